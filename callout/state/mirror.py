"""What the store asks of each bucket's user (how to create the bucket, take a watched entry,
and write what changed locally), and the one way pending changes are written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol, TypeVar

from nats.js.kv import KeyValue

from callout.state.health import StateHealth

DELETED = ("DEL", "PURGE")  # KV-Operation of an entry that removes its key
BATCH = 64  # writes in flight at once, per bucket

Change = TypeVar("Change")


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


async def write_batches(
    changes: Mapping[str, Change],
    write: Callable[[str, Change], Awaitable[object]],
    pending: MutableMapping[str, Change],
    settled: Callable[[Change, object], None] = lambda change, result: None,
) -> None:
    """Write every change, `BATCH` at a time (one round trip per batch, not per key), and
    give each result (or its error) to ``settled``. When a write fails, the failed changes and
    every later one go back to ``pending`` (a newer change queued meanwhile wins) and the first
    error is raised; if the writer is cancelled, the batch in flight goes back too."""
    entries = list(changes.items())
    for start in range(0, len(entries), BATCH):
        batch = entries[start : start + BATCH]
        try:
            results = await asyncio.gather(
                *(write(key, change) for key, change in batch), return_exceptions=True
            )
        except BaseException:
            _requeue(entries[start:], pending)
            raise
        failed = []
        for (key, change), result in zip(batch, results, strict=True):
            settled(change, result)
            if isinstance(result, BaseException):
                failed.append((key, change, result))
        if failed:
            _requeue([(key, change) for key, change, _ in failed], pending)
            _requeue(entries[start + BATCH :], pending)
            raise failed[0][2]


def _requeue(entries: list[tuple[str, Change]], pending: MutableMapping[str, Change]) -> None:
    for key, change in entries:
        pending.setdefault(key, change)


Record = dict[str, Any]


class RecordWrites:
    """JSON records waiting to be written to a bucket (None: delete the key). Bounded: at most
    ``max_pending`` keys wait; a change to one more is dropped and counted (the local state
    still holds it)."""

    def __init__(self, health: StateHealth, max_pending: int) -> None:
        self.health = health
        self.max_pending = max_pending
        self.wakeup = asyncio.Event()
        self.pending: dict[str, Record | None] = {}

    def put(self, key: str, record: Record) -> None:
        self._queue(key, record)

    def delete(self, key: str) -> None:
        self._queue(key, None)

    def _queue(self, key: str, record: Record | None) -> None:
        if key not in self.pending and len(self.pending) >= self.max_pending:
            self.health.dropped.inc()
            return
        self.pending[key] = record
        self.wakeup.set()

    async def flush(self, kv: KeyValue, budget: float) -> None:
        """Write the pending records (sorted keys), each bounded by ``budget``."""
        batch, self.pending = self.pending, {}

        async def write(key: str, record: Record | None) -> object:
            if record is None:
                return await asyncio.wait_for(kv.delete(key), budget)
            body = json.dumps(record, sort_keys=True).encode()
            return await asyncio.wait_for(kv.put(key, body), budget)

        await write_batches(batch, write, self.pending)
