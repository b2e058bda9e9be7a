"""The service lifecycle: startup → serve → shutdown, of a `Service` built by
`callout.service.compose.build`.

``App(settings)`` builds every part at once (`ConfigError` for anything that cannot work,
before any I/O). `App.start` opens the HTTP probe port and retries the initial NATS connect
until it succeeds or a stop signal arrives (a sidecar starts before its nats-server).
`App.run` installs signal handlers: SIGHUP reloads policy and keys, as does a change in their
directories (a failed reload keeps the last good state); the first SIGTERM/SIGINT flips
readiness to 503 and drains: the subscription is drained (the server routes new requests to
the other members of the queue group; every request it already routed here is answered
here), in-flight requests finish, replies are flushed and the connection closed, all within
``service.drain_timeout`` plus `CLOSE_MARGIN`; then `run` returns 0. A second SIGTERM/SIGINT
forces the exit: in-flight requests are cancelled, the connection is closed without a drain,
and `run` returns `EXIT_FORCED` (1), with a ``shutdown_forced`` log line and no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

import structlog
from nats.aio.client import Client as NatsClient

from callout.backends.chain import close_backends, reloading
from callout.observability.auditstream import JetStreamAudit
from callout.observability.http import ProbeServer
from callout.observability.metrics import Metrics
from callout.service.compose import BackendFactory, Service, build, describe
from callout.service.connector import Connector
from callout.service.runtime import Runtime
from callout.service.worker import Worker
from callout.sessions.live import LiveSessions
from callout.settings import Settings

log = structlog.get_logger("callout.app")

CLOSE_MARGIN = 1.0  # seconds past drain_timeout for the last flush and close
EXIT_FORCED = 1  # a second signal cut the drain short: requests in flight were dropped


class App:
    """One service process: ``await App(settings).run()`` until a signal, then exit code.

    ``backends`` and ``settings_source`` are passed to `build`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_ready: Callable[[], None] | None = None,
        backends: BackendFactory | None = None,
        settings_source: Callable[[], Settings] | None = None,
    ) -> None:
        self.settings = settings
        self.on_ready = on_ready
        self._stopping = asyncio.Event()
        self._forced = asyncio.Event()
        self.metrics = Metrics()
        self.metrics.watch_nats(lambda: self.nc is not None and bool(self.nc.is_connected))
        self.service: Service = build(
            settings,
            metrics=self.metrics,
            readiness=self.readiness,
            backends=backends,
            settings_source=settings_source,
        )
        self.reloader = self.service.reloader
        self.metrics.watch_file_reloads(reloading(self.service.worker.pipeline.backends))
        self.connector = Connector(
            settings.nats, self.service.connect_options, self.metrics, self._stopping
        )

    @property
    def nc(self) -> NatsClient | None:
        """The service's NATS connection, once connected."""
        return self.connector.nc

    @property
    def worker(self) -> Worker:
        return self.service.worker

    @property
    def http(self) -> ProbeServer | None:
        return self.service.http

    @property
    def sessions(self) -> LiveSessions | None:
        return self.service.sessions

    @property
    def audit_stream(self) -> JetStreamAudit | None:
        return self.service.audit_stream

    def current_runtime(self) -> Runtime:
        return self.reloader.current()

    def reload(self, trigger: str = "signal") -> bool:
        """See `Reloader.reload`."""
        return self.reloader.reload(trigger)

    def readiness(self) -> dict[str, bool]:
        """The readiness checks (`/readyz`): all must hold to take traffic."""
        return {
            "nats_connected": self.nc is not None and bool(self.nc.is_connected),
            "subscribed": self.worker.subscribed,
            "policy_loaded": self.reloader.policy_loaded(),
            "keys_loaded": self.reloader.keys_loaded(),
            "not_shutting_down": not self._stopping.is_set(),
        }

    async def start(self) -> None:
        """Open the probe port, connect (retrying until stop is asked), subscribe."""
        service = self.service
        if service.http is not None:
            await service.http.start()
        log.info("service_starting", **describe(service))
        nc = await self.connector.connect()
        if nc is None:
            return
        if service.policy_feed is not None:  # the bucket's policy before the first request
            await service.policy_feed.start(nc)
        if service.shared is not None:  # bounded: on failure, local state until KV is back
            await service.shared.store.start(nc)
        await service.worker.start(nc)
        await service.micro.start(nc)
        if service.audit_stream is not None:
            await service.audit_stream.start(nc)
        if service.sessions is not None:
            await service.sessions.start(nc)
        await nc.flush()
        if service.watcher is not None:
            await service.watcher.start()
            # Catch up with anything changed between the first load and the watch.
            await self.reloader.reload_in_thread("watch")
        log.info(
            "service_ready",
            subject=self.settings.nats.subject,
            queue=self.settings.nats.queue_group,
        )
        if self.on_ready is not None:
            self.on_ready()

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Drain: no new requests, in-flight ones finish, replies flushed, closed; all within
        ``service.drain_timeout`` plus `CLOSE_MARGIN`, whatever a backend is waiting for."""
        self._stopping.set()
        service = self.service
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.service.drain_timeout

        def left() -> float:
            return max(0.0, deadline - loop.time())

        if service.watcher is not None:
            await service.watcher.stop()
        if service.policy_feed is not None:
            await service.policy_feed.stop()
        await service.worker.stop(left())
        if service.shared is not None:
            await service.shared.store.stop(write_within=left())
        if service.sessions is not None:
            await service.sessions.stop()
        nc = self.nc
        if nc is not None and nc.is_connected:
            await service.micro.stop()
        if service.audit_stream is not None:
            await service.audit_stream.stop(left())
        if nc is not None and not nc.is_closed:
            # shielded, as the worker's drain: a cancelled flush breaks nats-py's read loop
            draining = asyncio.ensure_future(nc.drain())
            draining.add_done_callback(lambda task: task.cancelled() or task.exception())
            try:
                await asyncio.wait_for(asyncio.shield(draining), timeout=left() + CLOSE_MARGIN)
            except Exception as error:  # noqa: BLE001 - closing must not fail the shutdown
                log.warning("nats_drain_failed", error=type(error).__name__)
                await self._close_nats()
        await self._release()
        log.info("service_stopped", cancelled_requests=service.worker.cancelled)

    async def _close_nats(self) -> None:
        nc = self.nc
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), timeout=CLOSE_MARGIN)

    async def _release(self) -> None:
        """Stop the pools (a blocked backend call is abandoned) and the probe port."""
        self.service.verifier.close()
        close_backends(self.worker.pipeline.backends)
        if self.http is not None:
            await self.http.stop()

    async def _force_stop(self) -> None:
        """A second signal: cancel what is in flight, close without a drain."""
        await self.worker.stop(0.0)
        if self.service.policy_feed is not None:
            await self.service.policy_feed.stop()
        if self.service.shared is not None:
            await self.service.shared.store.stop()
        await self._close_nats()
        await self._release()
        log.warning("shutdown_forced", cancelled_requests=self.worker.cancelled)

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, drain, and return the exit code: 0, or
        `EXIT_FORCED` when a second signal cut the drain short."""
        loop = asyncio.get_running_loop()

        def on_stop() -> None:
            if self._stopping.is_set():
                self._forced.set()
            self._stopping.set()

        reloads: set[asyncio.Task[bool]] = set()

        def on_reload() -> None:
            task = asyncio.ensure_future(self.reloader.reload_in_thread("signal"))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_reload}
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        try:
            await self.start()
            await self._stopping.wait()
            log.info("shutdown_started")
            return await self._drain_or_force()
        finally:
            for sig in handlers:
                loop.remove_signal_handler(sig)

    async def _drain_or_force(self) -> int:
        draining = asyncio.ensure_future(self.stop())
        forced = asyncio.ensure_future(self._forced.wait())
        await asyncio.wait({draining, forced}, return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        if draining.done():
            draining.result()
            return 0
        draining.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await draining
        await self._force_stop()
        return EXIT_FORCED
