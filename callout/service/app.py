"""The service lifecycle: build from settings → connect → serve → drain on a signal.

`App.start` fails fast on configuration (`ConfigError`) and retries the initial NATS connect
until it succeeds or a stop signal arrives (a sidecar starts before its nats-server).
`App.run` installs signal handlers: SIGHUP reloads policy and keys (a failed reload keeps the
last good state); the first SIGTERM/SIGINT drains (unsubscribe, let in-flight requests finish
within ``service.drain_timeout``, flush, close), a second one cancels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import nats
import structlog

from callout.backends.base import Backend
from callout.backends.chain import close_backends
from callout.backends.passwords import PasswordVerifier
from callout.errors import ConfigError
from callout.secrets import read_secret
from callout.service.login import CredsLogin
from callout.service.pipeline import Pipeline
from callout.service.runtime import Runtime
from callout.service.wiring import account_names, build_backends, load_runtime, restart_sections
from callout.service.worker import Worker
from callout.settings import NatsSettings, Settings

log = structlog.get_logger("callout.app")

BackendFactory = Callable[[PasswordVerifier], Sequence[Backend]]


def connect_options(settings: NatsSettings) -> dict[str, Any]:
    """nats-py connect() keyword arguments; the password is read from its file here."""
    options: dict[str, Any] = {
        "servers": settings.servers,
        "name": settings.name,
        "connect_timeout": settings.connect_timeout,
        "reconnect_time_wait": settings.reconnect_wait,
        "max_reconnect_attempts": -1,
        "allow_reconnect": True,
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

    def current_runtime(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError("the service has not started")
        return self.runtime

    def reload(self) -> bool:
        """Re-read settings (if there is a source), policy and keys; swap them in only if all
        of it loads. Returns success."""
        try:
            settings = self._next_settings()
            runtime = load_runtime(settings)
        except ConfigError as error:
            log.error("reload_failed", error=str(error))  # noqa: TRY400 - the message is the diagnosis
            return False
        fixed = restart_sections(self.settings, settings)
        if fixed:
            log.warning("reload_needs_restart", sections=fixed)
        self.runtime = runtime
        log.info("reloaded", policy_digest=runtime.policy.digest, accounts=account_names(settings))
        return True

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
        self.verifier = PasswordVerifier(max_workers=self.settings.service.password_workers)
        factory = self.backend_factory or (lambda v: build_backends(self.settings, v))
        service = self.settings.service
        pipeline = Pipeline(
            runtime=self.current_runtime,
            backends=factory(self.verifier),
            system_account=self.settings.system_account,
            deny_mode=service.deny,
            error_message=service.error_message,
            leeway=service.request_leeway,
        )
        self.worker = Worker(
            pipeline,
            subject=self.settings.nats.subject,
            queue=self.settings.nats.queue_group,
            max_concurrency=service.max_concurrency,
            max_pending=service.max_pending,
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
        await self.nc.flush()
        log.info(
            "service_ready",
            subject=self.settings.nats.subject,
            queue=self.settings.nats.queue_group,
        )
        if self.on_ready is not None:
            self.on_ready()

    async def _connect(self, options: dict[str, Any]) -> Any:
        """Connect, retrying until connected or told to stop.

        With unlimited reconnects nats-py retries the first connect itself (every
        ``reconnect_wait``, reporting each failure to the error callback), so the attempt is
        raced against the stop signal: a SIGTERM before nats-server is up ends it at once.
        """
        connecting = asyncio.create_task(
            nats.connect(
                **options,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        )
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if connecting.done():
            return connecting.result()
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        return None

    async def _on_error(self, error: Exception) -> None:
        log.warning("nats_error", error=str(error))

    async def _on_disconnected(self) -> None:
        log.warning("nats_disconnected")

    async def _on_reconnected(self) -> None:
        log.info("nats_reconnected")

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Drain: no new requests, in-flight ones finish (bounded), replies flushed, closed."""
        self._stopping.set()
        grace = self.settings.service.drain_timeout
        if self.worker is not None:
            await self.worker.stop(grace)
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.drain(), timeout=grace)
            except Exception as error:  # noqa: BLE001 - closing must not fail the shutdown
                log.warning("nats_drain_failed", error=type(error).__name__)
                await self.nc.close()
        if self.verifier is not None:
            self.verifier.close()
        if self.worker is not None:
            close_backends(self.worker.pipeline.backends)
        cancelled = self.worker.cancelled if self.worker else 0
        log.info("service_stopped", cancelled_requests=cancelled)

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, drain, and return the exit code (0)."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()

        def on_stop() -> None:
            if self._stopping.is_set() and main is not None:
                main.cancel()  # a second signal: stop waiting for the drain
            self._stopping.set()

        handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: self.reload}
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        try:
            await self.start()
            await self._stopping.wait()
            log.info("shutdown_started")
            await self.stop()
        finally:
            for sig in handlers:
                loop.remove_signal_handler(sig)
        return 0
