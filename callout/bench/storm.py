"""The reconnect storm: N connected clients, their nats-server restarts, all log in again.

Clients reconnect the way nats.go does by default with one server in its pool: before every
attempt, the first included, it waits ReconnectWait (2 s) plus up to 100 ms of jitter
(nats.go `doReconnect`: with one server the "whole list tried" sleep comes first). An *auth
timeout* is a refusal that took the server's whole auth timeout (the service did not answer in
time).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from callout.bench.rawnats import Credential, Session

RECONNECT_WAIT = 2.0
RECONNECT_JITTER = 0.1
_AUTH_TIMEOUT_FRACTION = 0.9


@dataclass
class StormResult:
    clients: int
    connected_before: int = 0
    reconnected: int = 0
    recovery_seconds: float = 0.0
    auth_timeouts: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    attempts: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "clients": self.clients,
            "connected_before": self.connected_before,
            "reconnected": self.reconnected,
            "recovery_seconds": round(self.recovery_seconds, 3),
            "auth_timeouts": self.auth_timeouts,
            "refusals": dict(self.refusals),
            "attempts": self.attempts,
        }


_OPEN_TRIES = 3  # the set-up, not the storm: a login refused on a busy machine is tried again


async def _open_all(sessions: Sequence[Session], concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)

    async def one(session: Session) -> bool:
        async with gate:
            for _ in range(_OPEN_TRIES):
                if (await session.open()).ok:
                    return True
                await asyncio.sleep(RECONNECT_WAIT)
            return False

    return sum(await asyncio.gather(*(one(s) for s in sessions)))


async def _reconnect(
    session: Session, result: StormResult, started: float, deadline: float, auth_timeout: float
) -> None:
    await session.serve_until_closed()
    while time.perf_counter() < deadline:
        await asyncio.sleep(RECONNECT_WAIT + random.uniform(0, RECONNECT_JITTER))  # noqa: S311 - jitter
        attempt = await session.open()
        result.attempts += 1
        if attempt.ok:
            result.reconnected += 1
            result.recovery_seconds = max(result.recovery_seconds, time.perf_counter() - started)
            return
        if (
            "Authorization" in attempt.error
            and attempt.latency >= auth_timeout * _AUTH_TIMEOUT_FRACTION
        ):
            result.auth_timeouts += 1
        if not attempt.error.startswith("connect"):
            result.refusals[attempt.error] += 1


async def storm(
    host: str,
    port: int,
    credentials: Sequence[Credential],
    *,
    clients: int,
    restart_server: Callable[[], None],
    open_concurrency: int = 32,
    limit: float = 90.0,
    auth_timeout: float = 2.0,
) -> StormResult:
    """Connect ``clients`` sessions, call ``restart_server()`` (blocking, in a thread), and wait
    until every session has logged in again or ``limit`` seconds pass."""
    result = StormResult(clients)
    sessions = [
        Session(host, port, credentials[i % len(credentials)], timeout=auth_timeout + 3)
        for i in range(clients)
    ]
    result.connected_before = await _open_all(sessions, open_concurrency)
    started = time.perf_counter()
    deadline = started + limit
    watchers = [
        asyncio.create_task(_reconnect(s, result, started, deadline, auth_timeout))
        for s in sessions
    ]
    try:
        await asyncio.to_thread(restart_server)
        await asyncio.gather(*watchers)
    finally:
        for session in sessions:
            session.close()
        await asyncio.sleep(0)  # let the transports finish closing
    return result
