"""The sessions on the wire: the system-account connection, kicks, and reload revocation.

`SessionService.start` opens its own connection to the system account (the only place the
server publishes connect/disconnect events and answers ``$SYS.REQ.SERVER.<id>.KICK``) and
reads rejections of our grants from the callout account's auth-error advisory on the
service's connection. `revoke` runs after each policy reload: it re-decides every live
session (`revoker`), applies the cap, and kicks at ``kick_rate`` (or only reports).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog
from nats.aio.client import Client as NatsClient

from callout.observability.audit import AuditLog
from callout.observability.decided import RuntimeView
from callout.protocol.port import Msg, Subscriber, Subscription
from callout.sessions import advisories
from callout.sessions.registry import SessionKey
from callout.sessions.revoker import Revocation, plan, revocations
from callout.sessions.tracker import SessionTracker
from callout.settings import SessionsSettings

log = structlog.get_logger("callout.sessions")

_RETRY = 5.0  # seconds between attempts at the system login after a failure


class Kickable(Protocol):
    """A session to end: ours (`Session`) or another replica's (`SharedSession`)."""

    @property
    def server_id(self) -> str: ...
    @property
    def client_id(self) -> int: ...
    @property
    def key(self) -> SessionKey: ...
    @property
    def principal(self) -> str: ...
    @property
    def account(self) -> str: ...
    @property
    def backend(self) -> str: ...


class SessionService:
    """Follows the server's events into the tracker and ends sessions by kicking them."""

    def __init__(
        self,
        settings: SessionsSettings,
        tracker: SessionTracker,
        *,
        system_options: dict[str, Any],
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.tracker = tracker
        self.system_options = system_options
        self.audit = audit
        self.system: NatsClient | None = None
        self._subscriptions: list[Subscription] = []
        self._revoking = asyncio.Lock()
        self._retry: asyncio.Future[None] | None = None

    async def start(self, service_nc: Subscriber) -> None:
        """Connect to the system account and subscribe to the events we follow."""
        self._subscriptions.append(
            await service_nc.subscribe(advisories.AUTH_ERROR_SUBJECT, cb=self._on_auth_error)
        )
        try:
            await self._connect_system()
        except Exception as error:  # noqa: BLE001 - retried in the background, never fatal
            log.error(  # noqa: TRY400 - the error's type is the diagnosis; no secrets in it
                "sessions_system_connect_failed", error=type(error).__name__, retry_in_s=_RETRY
            )
            self._retry = asyncio.ensure_future(self._connect_later())
            return
        log.info("sessions_started", revocation=self.settings.revocation)

    async def _connect_later(self) -> None:
        """Keep trying the system login: until it works, kicks fail and are reported."""
        while self.system is None:
            await asyncio.sleep(_RETRY)
            try:
                await self._connect_system()
            except Exception as error:  # noqa: BLE001 - logged, tried again
                log.warning("sessions_system_connect_failed", error=type(error).__name__)
        log.info("sessions_started", revocation=self.settings.revocation)

    async def _connect_system(self) -> None:
        system = NatsClient()
        name = f"{self.system_options.get('name', '')}-sessions"
        await system.connect(**{**self.system_options, "name": name}, error_cb=self._on_error)
        for subject, handler in (
            (advisories.CONNECT_SUBJECT, self._on_connect),
            (advisories.DISCONNECT_SUBJECT, self._on_disconnect),
            (advisories.SHUTDOWN_SUBJECT, self._on_shutdown),
        ):
            await system.subscribe(subject, cb=handler)
        await system.flush()
        self.system = system

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        self._subscriptions.clear()
        if self.system is not None and not self.system.is_closed:
            with contextlib.suppress(Exception):
                await self.system.close()

    async def _on_error(self, error: Exception) -> None:
        log.warning("sessions_nats_error", error=str(error))

    async def _on_connect(self, msg: Msg) -> None:
        event = advisories.client_event(msg.data)
        if event is not None:
            self.tracker.connected(event)

    async def _on_disconnect(self, msg: Msg) -> None:
        event = advisories.client_event(msg.data)
        if event is not None:
            self.tracker.disconnected(event)

    async def _on_shutdown(self, msg: Msg) -> None:
        server_id = advisories.shutdown_server(msg.subject)
        if server_id:
            self.tracker.server_gone(server_id)

    async def _on_auth_error(self, msg: Msg) -> None:
        event = advisories.client_event(msg.data)
        if event is None:
            return
        audit = self.tracker.rejected(event)
        if audit is not None:
            self.audit.emit(audit)

    async def kick(self, session: Kickable) -> str:
        """End one connection; "" when it ended, else what went wrong."""
        if self.system is None or not self.system.is_connected:
            return "no system-account connection"
        try:
            reply = await self.system.request(
                advisories.kick_subject(session.server_id),
                advisories.kick_body(session.client_id),
                timeout=self.settings.kick_timeout,
            )
        except Exception as error:  # noqa: BLE001 - a failed kick is reported, never raised
            return f"kick request failed ({type(error).__name__})"
        problem = advisories.kick_error(reply.data)
        if problem.startswith("no such client"):
            problem = ""  # it ended meanwhile (its disconnect event may still be on the way)
        if not problem:
            self.tracker.registry.remove(session.key)
        return problem

    async def kick_all(
        self, sessions: Sequence[Kickable], *, why: str
    ) -> tuple[list[str], list[str]]:
        """Kick ``sessions`` at ``kick_rate``; returns the keys (``<server id>.<client id>``)
        kicked and those that failed."""
        kicked: list[str] = []
        failed: list[str] = []
        pause = 1.0 / self.settings.kick_rate
        for index, session in enumerate(sessions):
            if index:
                await asyncio.sleep(pause)
            problem = await self.kick(session)
            result = "failed" if problem else "kicked"
            self.tracker.metrics.revocations.labels(result).inc()
            (failed if problem else kicked).append(f"{session.server_id}.{session.client_id}")
            (log.warning if problem else log.info)(
                "session_kicked" if not problem else "session_kick_failed",
                why=why,
                principal=session.principal,
                backend=session.backend,
                account=session.account,
                server_id=session.server_id,
                client_id=session.client_id,
                problem=problem or None,
            )
        return kicked, failed

    async def revoke(self, runtime: RuntimeView, *, now: Callable[[], float]) -> list[Revocation]:
        """After a reload: end the sessions ``runtime`` decides differently (bounded by the
        cap and the rate), or only report them. Returns what was found."""
        async with self._revoking:
            self.tracker.sweep()
            # ~5 µs a session: off the loop, so 100k sessions do not stall the logins.
            live = list(self.tracker.registry)
            found = await asyncio.to_thread(revocations, live, runtime, now())
            if not found:
                return found
            decided = plan(found, cap=self.settings.max_revocations_per_reload)
            if decided.held_back:
                self.tracker.metrics.held_back.inc(len(decided.held_back))
                log.error(
                    "revocation_held_back",
                    sessions=len(decided.held_back),
                    cap=self.settings.max_revocations_per_reload,
                    policy_digest=runtime.policy.digest,
                    hint="more sessions than sessions.max_revocations_per_reload would be "
                    "kicked: check the policy; kick them with `callout sessions kick`",
                )
                return found
            for revocation in decided.kick:
                log.info(
                    "session_revoked",
                    reason=revocation.reason,
                    principal=revocation.session.principal,
                    account=revocation.session.account,
                    mode=self.settings.revocation,
                    policy_digest=runtime.policy.digest,
                )
            if self.settings.revocation == "report":
                self.tracker.metrics.revocations.labels("reported").inc(len(decided.kick))
                return found
            await self.kick_all([r.session for r in decided.kick], why="policy_reload")
            return found
