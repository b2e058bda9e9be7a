"""What the store asks of each bucket's user: how to create the bucket, take a watched entry,
and write what changed locally."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

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


async def write_records(
    kv: KeyValue, batch: dict[str, Any], pending: dict[str, Any], budget: float
) -> None:
    """Write ``batch`` (key -> JSON record, None: delete) in order, each within ``budget``;
    on a failure the unwritten rest goes back into ``pending`` (newer changes there win) and
    the error propagates."""
    for number, (key, record) in enumerate(batch.items()):
        try:
            if record is None:
                await asyncio.wait_for(kv.delete(key), budget)
            else:
                body = json.dumps(record, sort_keys=True).encode()
                await asyncio.wait_for(kv.put(key, body), budget)
        except BaseException:
            for later, value in list(batch.items())[number:]:
                pending.setdefault(later, value)
            raise
