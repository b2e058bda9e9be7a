"""`SharedSessions`: the session registries of all replicas, as one bucket.

Each live session is one key, ``<server id>.<client id>`` (where the connection lives: no
secret), holding the JSON summary `callout sessions list` shows (names, groups, account,
server, times: never a credential) with its ``until``, the expiry of the JWT we issued. The
replica that issued the grant writes it, and deletes it when the connection ends; any replica
deletes a key whose connection it saw end or whose ``until`` has passed (`expired`), so the
entries of a replica that stopped do not outlive their JWTs. The bucket's max age
(``state.sessions_max_age``) bounds what nobody deleted.

Bounded: at most ``max_pending`` writes wait (more are dropped and counted: the local registry
still holds the session) and at most ``max_mirrored`` entries are mirrored (the oldest
written leave first).
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


class SharedSessions:
    def __init__(
        self,
        bucket: str,
        *,
        max_age: float,
        health: StateHealth,
        max_pending: int = 10_000,
        max_mirrored: int = 60_000,
    ) -> None:
        self.bucket = bucket
        self.ttl: float | None = max_age
        self.health = health
        self.max_pending = max_pending
        self.max_mirrored = max_mirrored
        self.wakeup = asyncio.Event()
        self.values: dict[str, Record] = {}  # every replica's sessions, as watched
        self.pending: dict[str, Record | None] = {}
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
        self.values.pop(key, None)
        if value is None:
            return
        try:
            record = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("until"), int):
            log.warning("shared_session_ignored", key=key, revision=revision)
            return
        self.values[key] = record
        if len(self.values) > self.max_mirrored:
            del self.values[next(iter(self.values))]

    def live(self, now: float) -> dict[str, Record]:
        """Every replica's sessions whose JWT has not expired; none while on local state."""
        if not self.health.up:
            return {}
        return {key: r for key, r in self.values.items() if r["until"] > now}

    def expired(self, now: float) -> int:
        """Delete the entries whose JWT has expired (their connections are closed)."""
        keys = [key for key, record in self.values.items() if record["until"] <= now]
        for key in keys:
            del self.values[key]
            self.delete(key)
        return len(keys)

    async def opened(self, kv: KeyValue) -> None:
        """Write the sessions admitted while on local state that the bucket lacks."""
        for key, record in self.local().items():
            if key not in self.values and key not in self.pending:
                self._queue(key, record)

    async def flush(self, kv: KeyValue, budget: float) -> None:
        batch, self.pending = self.pending, {}
        await write_batches(batch, records_writer(kv, budget), self.pending)
