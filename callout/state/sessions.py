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

import json
from collections.abc import Callable

import structlog
from nats.js.kv import KeyValue

from callout.state.health import StateHealth
from callout.state.mirror import Record, RecordWrites

log = structlog.get_logger("callout.state")


class SharedSessions(RecordWrites):
    def __init__(
        self,
        bucket: str,
        *,
        max_age: float,
        health: StateHealth,
        max_pending: int = 10_000,
        max_mirrored: int = 60_000,
    ) -> None:
        super().__init__(health, max_pending)
        self.bucket = bucket
        self.ttl: float | None = max_age
        self.max_mirrored = max_mirrored
        self.values: dict[str, Record] = {}  # every replica's sessions, as watched
        self.local: Callable[[], dict[str, Record]] = dict

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
