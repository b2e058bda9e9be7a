"""`LiveSessions`: the one object the app holds for the feature, and its few hooks.

The app asks it to wrap the backends (deny list, identities), for the worker's observer,
to start after the worker (system connection, API) and to stop before the drain, and tells
it about every policy reload that changed something (from any thread).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient

from callout.backends.base import Backend
from callout.observability.audit import AuditLog
from callout.observability.decided import RuntimeView
from callout.observability.metrics import Metrics
from callout.sessions.api import SessionApi
from callout.sessions.denylist import DenyList
from callout.sessions.metrics import SessionMetrics
from callout.sessions.registry import SessionRegistry
from callout.sessions.service import SessionService
from callout.sessions.shared import share, share_sessions
from callout.sessions.tracker import DenyListGate, SessionObserver, SessionTracker
from callout.settings import SessionsSettings
from callout.state.revocations import SharedRevocations
from callout.state.sessions import SharedSessions

DENY_LIST_NAME = "deny-list.json"


class LiveSessions:
    def __init__(
        self,
        settings: SessionsSettings,
        *,
        policy_directory: Path,
        metrics: Metrics,
        audit: AuditLog,
        system_options: dict[str, Any],
    ) -> None:
        path = settings.deny_list_file or policy_directory / DENY_LIST_NAME
        self.tracker = SessionTracker(
            SessionRegistry(settings.max_sessions),
            DenyList(path, max_entries=settings.max_deny_entries),
            metrics=SessionMetrics(metrics.registry),
        )
        self.service = SessionService(
            settings, self.tracker, system_options=system_options, audit=audit
        )
        self.api = SessionApi(self.service, settings.api_subject)
        self.metrics = metrics
        self.audit = audit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    def share(self, revocations: SharedRevocations, sessions: SharedSessions | None) -> None:
        """Share the deny list and the registry with the other replicas (README "Running
        several replicas")."""
        share(self.tracker.deny_list, revocations, time.time)
        if sessions is not None:
            share_sessions(self.tracker.registry, sessions)
            self.api.shared = sessions

    def backends(self, backends: Sequence[Backend]) -> list[Backend]:
        return [DenyListGate(backend, self.tracker) for backend in backends]

    def observer(self) -> SessionObserver:
        return SessionObserver(self.tracker, metrics=self.metrics, audit=self.audit)

    async def start(self, service_nc: NatsClient) -> None:
        self._loop = asyncio.get_running_loop()
        await self.service.start(service_nc)
        await self.api.start(service_nc)

    def reloaded(self, runtime: RuntimeView) -> None:
        """A reload swapped in ``runtime``: re-decide the live sessions (thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def schedule() -> None:
            task = asyncio.ensure_future(self.service.revoke(runtime, now=time.time))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        loop.call_soon_threadsafe(schedule)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.api.stop()
        await self.service.stop()
