"""The service lifecycle: build from settings → connect → serve → drain on a signal.

`App.start` fails fast on configuration (`ConfigError`), opens the HTTP probe port, and
retries the initial NATS connect until it succeeds or a stop signal arrives (a sidecar
starts before its nats-server).
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
import ssl
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from nats import errors as nats_errors
from nats.aio.client import Client as NatsClient

from callout.backends.base import Backend
from callout.backends.chain import BackendReport, BackendStats, close_backends, report_chain
from callout.backends.passwords import PasswordVerifier
from callout.errors import ConfigError
from callout.observability.audit import AuditLog
from callout.observability.auditstream import JetStreamAudit
from callout.observability.http import ProbeServer
from callout.observability.metrics import CONTENT_TYPE, Metrics
from callout.observability.observer import ServiceObserver
from callout.secretfiles import read_secret
from callout.service.admission import expensive_limits
from callout.service.connection import Backoff, ConnectionLog, reconnect_handler
from callout.service.login import CredsLogin
from callout.service.micro import MicroResponder
from callout.service.pipeline import Pipeline
from callout.service.runtime import Runtime
from callout.service.throttle import Throttle
from callout.service.versionguard import VersionGuard
from callout.service.watcher import DirectoryWatcher
from callout.service.wiring import (
    account_names,
    build_backends,
    load_runtime,
    restart_sections,
    seed_files,
)
from callout.service.worker import Worker
from callout.sessions.live import LiveSessions
from callout.settings import NatsSettings, Settings

log = structlog.get_logger("callout.app")

CLOSE_MARGIN = 1.0  # seconds past drain_timeout for the last flush and close
EXIT_FORCED = 1  # a second signal cut the drain short: requests in flight were dropped

BackendFactory = Callable[[PasswordVerifier], Sequence[Backend]]


def connect_options(settings: NatsSettings) -> dict[str, Any]:
    """nats-py connect() keyword arguments; the password is read from its file here."""
    options: dict[str, Any] = {
        "servers": settings.servers,
        "name": settings.name,
        "connect_timeout": settings.connect_timeout,
        "reconnect_time_wait": settings.reconnect_wait,
        # Each server twice per initial attempt (the service's own backoff is between
        # attempts); `App._connect_once` lifts the limit once connected.
        "max_reconnect_attempts": 1,
        "allow_reconnect": True,
        "reconnect_to_server_handler": reconnect_handler(Backoff(first=settings.reconnect_wait)),
    }
    if settings.user:
        options["user"] = settings.user
    if settings.password_file:
        options["password"] = read_secret(settings.password_file, "NATS password")
    if settings.creds_file:
        options.update(CredsLogin(settings.creds_file).connect_options())
    if settings.tls_ca_file or settings.tls_cert_file:
        context = ssl.create_default_context(
            cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None
        )
        if settings.tls_cert_file and settings.tls_key_file:
            context.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
        options["tls"] = context
    return options


class App:
    """One service process: ``await App(settings).run()`` until a signal, then exit code.

    ``backends`` replaces the configured backend chain (tests use it at this port boundary).
    ``settings_source`` re-reads the settings on each reload (`callout serve` passes the file),
    so that keys, accounts and the policy directory can change without a restart.
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
        self.backend_factory = backends
        self.settings_source = settings_source
        self.runtime: Runtime | None = None
        self.verifier: PasswordVerifier | None = None
        self.worker: Worker | None = None
        self.nc: Any = None
        self._stopping = asyncio.Event()
        self.connection_log = ConnectionLog(settings.nats.servers, self._stopping.is_set)
        self._forced = asyncio.Event()
        self._reload_lock = threading.Lock()
        self._reload_failing = False
        self.metrics = Metrics()
        self.metrics.watch_nats(lambda: self.nc is not None and bool(self.nc.is_connected))
        self.http: ProbeServer | None = None
        self.watcher: DirectoryWatcher | None = None
        self.micro: MicroResponder | None = None
        self.audit_stream: JetStreamAudit | None = None
        self.sessions: LiveSessions | None = None

    def current_runtime(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError("the service has not started")
        return self.runtime

    def reload(self, trigger: str = "signal") -> bool:
        """Re-read settings (if there is a source), policy and keys; swap them in only if all
        of it loads. Returns success.

        Unchanged content (same policy digest and keys) is not swapped. Safe to call from a
        worker thread; reloads run one at a time.
        """
        with self._reload_lock:
            try:
                settings = self._next_settings()
                runtime = load_runtime(settings)
            except ConfigError as error:
                self._reload_failing = True
                self.metrics.reload(success=False)
                log.error(  # noqa: TRY400 - the message (file:line: problem) is the diagnosis
                    "reload_failed", trigger=trigger, error=str(error)
                )
                return False
            fixed = restart_sections(self.settings, settings)
            if fixed:
                log.warning("reload_needs_restart", sections=fixed)
            changed = self.runtime is None or _fingerprint(runtime) != _fingerprint(self.runtime)
            if changed:
                self.runtime = runtime
                self._loaded(runtime)
                self.metrics.reload(success=True)
                if self.sessions is not None:
                    self.sessions.reloaded(runtime)
            # After a failure, say that the files load again even when the fix restored the
            # running state: otherwise the last line in the log stays reload_failed.
            recovered, self._reload_failing = self._reload_failing, False
            if changed or recovered or trigger == "signal":
                log.info(
                    "policy_reloaded",
                    trigger=trigger,
                    changed=changed,
                    recovered=recovered,
                    policy_digest=runtime.policy.digest,
                    accounts=account_names(settings),
                )
            return True

    async def reload_in_thread(self, trigger: str) -> bool:
        """`reload` off the event loop: reading and compiling files never stalls requests."""
        return await asyncio.to_thread(self.reload, trigger)

    def _loaded(self, runtime: Runtime) -> None:
        policy = runtime.policy
        self.metrics.policy_loaded(
            users=len(policy.users),
            groups=len(policy.groups),
            tokens=len(policy.tokens),
            digest=policy.digest,
        )

    def _backend_reported(self, report: BackendReport) -> None:
        self.metrics.backend_call(report.backend, "authenticate", report.duration_s)
        if report.error:
            self.metrics.backend_error(report.backend, report.error)

    def _cache_lookup(self, hit: bool) -> None:
        self.metrics.cache_lookup("decision", hit=hit)

    def readiness(self) -> dict[str, bool]:
        """The readiness checks (`/readyz`): all must hold to take traffic."""
        return {
            "nats_connected": self.nc is not None and bool(self.nc.is_connected),
            "subscribed": self.worker is not None and self.worker.subscribed,
            "policy_loaded": self.runtime is not None,
            "keys_loaded": self.runtime is not None,
            "not_shutting_down": not self._stopping.is_set(),
        }

    def _watched_directories(self) -> list[Path]:
        parents = dict.fromkeys(f.parent for f in seed_files(self.settings))
        return [self.settings.policy.directory, *parents]

    def _relevant(self, path: Path) -> bool:
        """Whether a changed path can change what a reload reads (policy files, key files, or
        Kubernetes' ``..data`` swap of either)."""
        seeds = {f.resolve() for f in seed_files(self.settings)}
        policies = self.settings.policy.directory.resolve()
        if path in seeds or path.resolve() in seeds or path == policies:
            return True
        if any(part.startswith("..") for part in path.parts[-2:]):
            return True
        return path.parent == policies and path.suffix in (".yaml", ".yml")

    def _next_settings(self) -> Settings:
        if self.settings_source is None:
            return self.settings
        settings = self.settings_source()
        if settings.mode is not self.settings.mode:
            raise ConfigError(f"mode cannot change from {self.settings.mode} on reload; restart")
        return settings

    async def start(self) -> None:
        self.runtime = load_runtime(self.settings)
        options = connect_options(self.settings.nats)  # login files fail here, before any I/O
        self._loaded(self.runtime)
        self.metrics.watch_creds(_creds_expiry(options))
        if self.settings.http.enabled:
            http = self.settings.http
            self.http = ProbeServer(
                host=http.host,
                port=http.port,
                readiness=self.readiness,
                metrics=self.metrics.render,
                metrics_content_type=CONTENT_TYPE,
            )
            await self.http.start()
        self.verifier = PasswordVerifier(max_workers=self.settings.service.password_workers)
        stats = BackendStats()
        stats.observers.append(self._backend_reported)
        if self.backend_factory is None:
            backends = build_backends(self.settings, self.verifier, self._cache_lookup, stats)
        else:  # backends given at the port boundary (tests) report the same way
            given = self.backend_factory(self.verifier)
            leeway = self.settings.service.request_leeway
            backends = report_chain(given, stats, self.verifier, leeway=leeway)
        self.metrics.prime_backends(backend.name for backend in backends)
        service = self.settings.service
        pipeline = Pipeline(
            runtime=self.current_runtime,
            backends=backends,
            system_account=self.settings.system_account,
            deny_mode=service.deny,
            error_message=service.error_message,
            leeway=service.request_leeway,
            versions=VersionGuard(self.settings.server_versions, metrics=self.metrics),
        )
        audit = self.settings.audit
        if audit.jetstream.enabled:
            self.audit_stream = JetStreamAudit(audit.jetstream, self.metrics)
        sink = self.audit_stream.offer if self.audit_stream is not None else None
        observer = self._observer(pipeline, AuditLog(log=audit.log, sink=sink))
        throttle = self.settings.throttle
        self.worker = Worker(
            pipeline,
            subject=self.settings.nats.subject,
            queue=self.settings.nats.queue_group,
            max_concurrency=service.max_concurrency,
            max_pending=service.max_pending,
            observer=observer,
            throttle=Throttle(
                window=throttle.window,
                max_per_principal=throttle.max_failures_per_principal,
                max_per_ip=throttle.max_failures_per_ip,
                max_per_principal_unfamiliar=throttle.max_failures_per_principal_unfamiliar,
                familiar_for=throttle.familiar_for,
                max_tracked=throttle.max_tracked,
            )
            if throttle.enabled
            else None,
            expensive=expensive_limits(self.settings, self.verifier.workers),
        )
        worker = self.worker
        self.metrics.watch_inflight(lambda: worker.in_flight)
        self.metrics.watch_lanes(lambda: worker.admission.lanes)
        self.micro = MicroResponder(
            subject=self.settings.nats.subject,
            queue=self.settings.nats.queue_group,
            stats=observer.stats,
            details=lambda: {
                "decisions": {str(k): v for k, v in worker.decisions.items()},
                "drops": {str(k): v for k, v in worker.drops.items()},
                "policy_digest": self.current_runtime().policy.digest,
            },
        )
        xkey = self.runtime.xkey
        log.info(
            "service_starting",
            mode=self.settings.mode.value,
            xkey=xkey.public_key if xkey else None,
            accounts=account_names(self.settings),
            policy_digest=self.runtime.policy.digest,
        )
        self.nc = await self._connect(options)
        if self.nc is None:
            return
        await self.worker.start(self.nc)
        await self.micro.start(self.nc)
        if self.audit_stream is not None:
            await self.audit_stream.start(self.nc)
        if self.sessions is not None:
            await self.sessions.start(self.nc)
        await self.nc.flush()
        if self.settings.reload.watch:
            reload = self.settings.reload
            self.watcher = DirectoryWatcher(
                self._watched_directories(),
                lambda: self.reload_in_thread("watch"),
                relevant=self._relevant,
                debounce=reload.debounce,
                force_polling=reload.force_polling,
                poll_interval=reload.poll_interval,
            )
            await self.watcher.start()
            # Catch up with anything changed between the first load and the watch.
            await self.reload_in_thread("watch")
        log.info(
            "service_ready",
            subject=self.settings.nats.subject,
            queue=self.settings.nats.queue_group,
        )
        if self.on_ready is not None:
            self.on_ready()

    def _observer(self, pipeline: Pipeline, audit: AuditLog) -> ServiceObserver:
        """The worker's observer; with live sessions, one that also records the grants, and
        backends that refuse deny-listed identities."""
        if not self.settings.sessions.enabled:
            return ServiceObserver(metrics=self.metrics, audit=audit)
        self.sessions = _live_sessions(self.settings, self.metrics, audit)
        pipeline.backends = tuple(self.sessions.backends(pipeline.backends))
        return self.sessions.observer()

    async def _connect(self, options: dict[str, Any]) -> Any:
        backoff = Backoff(first=self.settings.nats.reconnect_wait)
        attempts = 0
        while not self._stopping.is_set():
            try:
                return await self._connect_once(options)
            except Exception as error:  # noqa: BLE001 - every connect failure is retried
                attempts += 1
                delay = backoff.delay(attempts)
                if not isinstance(error, nats_errors.NoServersError):  # its cause is logged
                    self.connection_log.failed(error, retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        return None

    async def _connect_once(self, options: dict[str, Any]) -> Any:
        """One nats-py connect (each server tried twice), abandoned when stop is asked."""
        nc = NatsClient()
        connecting = asyncio.ensure_future(
            nc.connect(
                **options,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if connecting.done():
            connecting.result()
            # Connected: from now on nats-py reconnects forever, paced by reconnect_handler.
            nc.options["max_reconnect_attempts"] = -1
            self.connection_log.connected(_url(nc))
            return nc
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await connecting
        with contextlib.suppress(Exception):
            await nc.close()
        return None

    async def _on_error(self, error: Exception) -> None:
        self.connection_log.failed(error)

    async def _on_disconnected(self) -> None:
        self.connection_log.disconnected()

    async def _on_reconnected(self) -> None:
        self.metrics.reconnected()
        self.connection_log.connected(_url(self.nc))

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Drain: no new requests, in-flight ones finish, replies flushed, closed; all within
        ``service.drain_timeout`` plus `CLOSE_MARGIN`, whatever a backend is waiting for."""
        self._stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.service.drain_timeout

        def left() -> float:
            return max(0.0, deadline - loop.time())

        if self.watcher is not None:
            await self.watcher.stop()
        if self.worker is not None:
            await self.worker.stop(left())
        if self.sessions is not None:
            await self.sessions.stop()
        if self.micro is not None and self.nc is not None and self.nc.is_connected:
            await self.micro.stop()
        if self.audit_stream is not None:
            await self.audit_stream.stop(left())
        if self.nc is not None and not self.nc.is_closed:
            # shielded, as the worker's drain: a cancelled flush breaks nats-py's read loop
            draining = asyncio.ensure_future(self.nc.drain())
            draining.add_done_callback(lambda task: task.cancelled() or task.exception())
            try:
                await asyncio.wait_for(asyncio.shield(draining), timeout=left() + CLOSE_MARGIN)
            except Exception as error:  # noqa: BLE001 - closing must not fail the shutdown
                log.warning("nats_drain_failed", error=type(error).__name__)
                await self._close_nats()
        await self._release()
        cancelled = self.worker.cancelled if self.worker else 0
        log.info("service_stopped", cancelled_requests=cancelled)

    async def _close_nats(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), timeout=CLOSE_MARGIN)

    async def _release(self) -> None:
        """Stop the pools (a blocked backend call is abandoned) and the probe port."""
        if self.verifier is not None:
            self.verifier.close()
        if self.worker is not None:
            close_backends(self.worker.pipeline.backends)
        if self.http is not None:
            await self.http.stop()

    async def _force_stop(self) -> None:
        """A second signal: cancel what is in flight, close without a drain."""
        if self.worker is not None:
            await self.worker.stop(0.0)
        await self._close_nats()
        await self._release()
        cancelled = self.worker.cancelled if self.worker else 0
        log.warning("shutdown_forced", cancelled_requests=cancelled)

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
            task = asyncio.ensure_future(self.reload_in_thread("signal"))
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


def _creds_expiry(options: dict[str, Any]) -> Callable[[], int | None]:
    """When the creds the service logs in with expire (None: never, or no creds file)."""
    login = getattr(options.get("signature_cb"), "__self__", None)
    if not isinstance(login, CredsLogin):
        return lambda: None
    return lambda: login.creds.expires


def _live_sessions(settings: Settings, metrics: Metrics, audit: AuditLog) -> LiveSessions:
    """The sessions feature; its system login defaults to the service's servers."""
    sessions = settings.sessions
    assert sessions.system is not None  # noqa: S101 - the settings validator guarantees it
    system = sessions.system
    if "servers" not in system.model_fields_set:
        system = system.model_copy(update={"servers": settings.nats.servers})
    return LiveSessions(
        sessions,
        policy_directory=settings.policy.directory,
        metrics=metrics,
        audit=audit,
        system_options=connect_options(system),
    )


def _fingerprint(runtime: Runtime) -> tuple[object, ...]:
    """What a reload compares: the policy digest and every key and account in use."""
    xkey = runtime.xkey.public_key if runtime.xkey is not None else ""
    return runtime.policy.digest, runtime.issuer.fingerprint, xkey, runtime.system_account


def _url(nc: Any) -> str | None:
    url = nc.connected_url if nc is not None else None
    return url.geturl() if url is not None else None
