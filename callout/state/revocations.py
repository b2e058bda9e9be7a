"""`SharedRevocations`: deny-until entries every replica enforces.

Each entry is one key (its owner names it, e.g. ``user.<base64url name>``) holding a small
JSON object with its ``until``. A replica that adds or removes an entry queues the write; the
watch brings every replica's entries to the `listener` (its own too: applying one twice is
harmless). When the bucket is opened again after an outage, the entries this replica holds
and the bucket does not (added while on local state) are written. Last writer wins.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import structlog
from nats.js.kv import KeyValue

from callout.state.health import StateHealth
from callout.state.mirror import Record, RecordWrites

log = structlog.get_logger("callout.state")


class SharedRevocations(RecordWrites):
    def __init__(self, bucket: str, *, health: StateHealth, max_pending: int = 10_000) -> None:
        super().__init__(health, max_pending)
        self.bucket = bucket
        self.ttl: float | None = None  # entries carry their own `until`
        self.known: set[str] = set()  # keys the bucket holds, as watched
        self.listener: Callable[[str, Record | None], None] = lambda key, record: None
        self.local: Callable[[], dict[str, Record]] = dict

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
