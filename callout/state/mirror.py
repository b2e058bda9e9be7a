"""What the store asks of each bucket's user: how to create the bucket, take a watched entry,
and write what changed locally."""

from __future__ import annotations

import asyncio
from typing import Protocol

from nats.js.kv import KeyValue

DELETED = ("DEL", "PURGE")  # KV-Operation of an entry that removes its key


class Mirror(Protocol):
    """A local copy of one bucket, and the local changes waiting to be written to it."""

    bucket: str
    ttl: float | None  # the bucket's max age (None: entries stay until deleted)
    wakeup: asyncio.Event  # set when there is something to write

    def apply(self, key: str, value: bytes | None, revision: int) -> None:
        """A watched entry (``value`` None: the key was deleted)."""

    async def opened(self, kv: KeyValue) -> None:
        """The watch has caught up: write what only this replica knows."""

    async def flush(self, kv: KeyValue, budget: float) -> None:
        """Write the pending changes; raise if KV fails (they stay pending)."""
