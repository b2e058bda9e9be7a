"""The service lifecycle: build from settings → connect → serve → drain on a signal.

`App.start` fails fast on configuration (`ConfigError`) and retries the initial NATS connect
with backoff (a sidecar starts before its nats-server). `App.run` installs signal handlers:
SIGHUP reloads policy and keys (a failed reload keeps the last good state); the first
SIGTERM/SIGINT drains (unsubscribe, let in-flight requests finish within
``service.drain_timeout``, flush, close), a second one cancels at once.
"""

from __future__ import annotations

import asyncio
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
from callout.service.pipeline import Pipeline
from callout.service.runtime import Runtime
from callout.service.wiring import build_backends, load_runtime
from callout.service.worker import Worker
from callout.settings import NatsSettings, Settings

log = structlog.get_logger("callout.app")

_BACKOFF_START = 0.25
_BACKOFF_MAX = 5.0

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
        read_secret(settings.creds_file, "NATS credentials")  # fail early with a clear message
        options["user_credentials"] = str(settings.creds_file)
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
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_ready: Callable[[], None] | None = None,
        backends: BackendFactory | None = None,
    ) -> None:
        self.settings = settings
        self.on_ready = on_ready
        self.backend_factory = backends
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
        """Re-read policy and keys; swap them in only if all of it loads. Returns success."""
        try:
            runtime = load_runtime(self.settings)
        except ConfigError as error:
            log.error("reload_failed", error=str(error))  # noqa: TRY400 - the message is the diagnosis
            return False
        self.runtime = runtime
        log.info("reloaded", policy_digest=runtime.policy.digest)
        return True

    async def start(self) -> None:
        self.runtime = load_runtime(self.settings)
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
            accounts=self.settings.accounts,
            policy_digest=self.runtime.policy.digest,
        )
        self.nc = await self._connect()
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

    async def _connect(self) -> Any:
        options = connect_options(self.settings.nats)
        delay = _BACKOFF_START
        while not self._stopping.is_set():
            try:
                return await nats.connect(
                    **options,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
            except Exception as error:  # noqa: BLE001 - every connect failure is retried
                log.warning("nats_connect_failed", error=type(error).__name__, retry_in_s=delay)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            except TimeoutError:
                delay = min(delay * 2, _BACKOFF_MAX)
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
