"""`SharedRevocations`: deny-until entries every replica enforces.

Each entry is one key (its owner names it, e.g. ``user.<base64url name>``) holding a small
JSON object with its ``until``. A replica that adds or removes an entry queues the write; the
watch brings every replica's entries to the `listener` (its own too: applying one twice is
harmless). When the bucket is opened again after an outage, the entries this replica holds
and the bucket does not (added while on local state) are written. Last writer wins.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import structlog
from nats.js.kv import KeyValue

from callout.state.health import StateHealth
from callout.state.mirror import records_writer, write_batches

log = structlog.get_logger("callout.state")

Record = dict[str, Any]


class SharedRevocations:
    def __init__(self, bucket: str, *, health: StateHealth, max_pending: int = 10_000) -> None:
        self.bucket = bucket
        self.ttl: float | None = None  # entries carry their own `until`
        self.health = health
        self.max_pending = max_pending
        self.wakeup = asyncio.Event()
        self.known: set[str] = set()  # keys the bucket holds, as watched
        self.pending: dict[str, Record | None] = {}
        self.listener: Callable[[str, Record | None], None] = lambda key, record: None
        self.local: Callable[[], dict[str, Record]] = dict

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

    def apply(self, key: str, value: bytes | None, revision: int) -> None:
        record: Record | None = None
        if value is not None:
            try:
                decoded = json.loads(value)
            except (ValueError, UnicodeDecodeError):
                decoded = None
            if not isinstance(decoded, dict):
                log.warning("shared_revocation_ignored", key=key, revision=revision)
                return
            record = decoded
        if record is None:
            self.known.discard(key)
        else:
            self.known.add(key)
        self.listener(key, record)

    async def opened(self, kv: KeyValue) -> None:
        for key, record in self.local().items():
            if key not in self.known and key not in self.pending:
                self._queue(key, record)

    async def flush(self, kv: KeyValue, budget: float) -> None:
        batch, self.pending = self.pending, {}
        await write_batches(batch, records_writer(kv, budget), self.pending)
