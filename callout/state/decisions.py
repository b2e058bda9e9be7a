"""`SharedDecisions`: decision-cache entries every replica may serve (a restarted replica is
warm for a reconnect storm).

A key is the decision cache's HMAC (hex) of (policy digest, backend, user, password) under
the key the replicas share: no password, no hash. The value is the verified identity (names,
groups, attributes: no secret), the wall-clock time it stops being used, and an HMAC of key
and value under the same shared key, so that whoever can write to the bucket without that key
cannot attach another identity to a cached credential. The bucket's max age is the cache's
ttl. Entries are written as verifications store them; the watch gives every replica's
entries to the `listener`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import structlog
from nats.js.kv import KeyValue

from callout.state.health import StateHealth
from callout.state.mirror import write_batches

log = structlog.get_logger("callout.state")

Record = dict[str, Any]


class SharedDecisions:
    def __init__(
        self, bucket: str, *, ttl: float, key: bytes, health: StateHealth, max_pending: int
    ) -> None:
        self.bucket = bucket
        self.ttl: float | None = ttl
        self.health = health
        self.max_pending = max_pending
        self.wakeup = asyncio.Event()
        self.pending: dict[str, bytes] = {}
        self.listener: Callable[[str, Record], None] = lambda key, record: None
        self._mac_key = hmac.new(key, b"callout decision cache entries", hashlib.sha256).digest()

    def _mac(self, key: str, body: bytes) -> str:
        return hmac.new(self._mac_key, key.encode() + b"\0" + body, hashlib.sha256).hexdigest()

    def put(self, key: str, record: Record) -> None:
        if key not in self.pending and len(self.pending) >= self.max_pending:
            self.health.dropped.inc()
            return
        body = json.dumps(record, sort_keys=True).encode()
        self.pending[key] = json.dumps({"entry": record, "mac": self._mac(key, body)}).encode()
        self.wakeup.set()

    def apply(self, key: str, value: bytes | None, revision: int) -> None:
        if value is None:
            return  # expired or deleted: the local copy expires by itself
        try:
            outer = json.loads(value)
            record = outer["entry"]
            body = json.dumps(record, sort_keys=True).encode()
            genuine = hmac.compare_digest(str(outer["mac"]), self._mac(key, body))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            genuine = False
        if not genuine or not isinstance(record, dict):
            log.warning("shared_decision_ignored", revision=revision)
            return
        self.listener(key, record)

    async def opened(self, kv: KeyValue) -> None:
        """Nothing to catch up: entries are short-lived."""

    async def flush(self, kv: KeyValue, budget: float) -> None:
        batch, self.pending = self.pending, {}

        async def put(key: str, body: bytes) -> object:
            return await asyncio.wait_for(kv.put(key, body), budget)

        await write_batches(batch, put, self.pending)
