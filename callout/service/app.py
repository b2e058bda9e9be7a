"""The service lifecycle: build from settings → connect → serve → drain on a signal.

`App.start` fails fast on configuration (`ConfigError`) and retries the initial NATS connect
with backoff (a sidecar starts before its nats-server). `App.run` installs SIGTERM/SIGINT
handlers; the first signal drains (unsubscribe, let in-flight requests finish within
``service.drain_timeout``, flush, close), a second one cancels at once.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nats
import structlog

from callout.backends.base import Backend
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.errors import ConfigError, PolicyError
from callout.policy.loader import load_policy
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.nkeys import CurveKeyPair
from callout.secrets import load_curve_key, load_signing_key, read_secret
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import Pipeline
from callout.service.worker import Worker
from callout.settings import NatsSettings, Settings

log = structlog.get_logger("callout.app")

_BACKOFF_START = 0.25
_BACKOFF_MAX = 5.0


@dataclass(frozen=True, slots=True)
class Components:
    """Everything built from settings before any connection is made."""

    pipeline: Pipeline
    issuer: ConfigModeIssuer
    xkey: CurveKeyPair | None
    verifier: PasswordVerifier


def build(
    settings: Settings,
    policy: Callable[[], PolicySnapshot],
    backends: Callable[[PasswordVerifier], Sequence[Backend]] | None = None,
) -> Components:
    """Load keys and wire the pipeline; `ConfigError` for anything that cannot work.

    ``backends`` replaces the configured backend chain (tests use it at this port boundary).
    """
    issuer_key = load_signing_key(settings.keys.issuer_seed_file, "issuer seed")
    xkey = load_curve_key(settings.keys.xkey_seed_file) if settings.keys.xkey_seed_file else None
    issuer = ConfigModeIssuer(issuer_key, frozenset(settings.accounts))
    verifier = PasswordVerifier(max_workers=settings.service.password_workers)
    pipeline = Pipeline(
        issuer=issuer,
        backends=backends(verifier) if backends else [StaticBackend(verifier)],
        policy=policy,
        xkey_pair=xkey,
        system_account=settings.system_account,
        deny_mode=settings.service.deny,
        error_message=settings.service.error_message,
        leeway=settings.service.request_leeway,
    )
    return Components(pipeline, issuer, xkey, verifier)


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
    """One service process: ``await App(settings).run()`` until a signal, then exit code."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_ready: Callable[[], None] | None = None,
        backends: Callable[[PasswordVerifier], Sequence[Backend]] | None = None,
    ) -> None:
        self.settings = settings
        self.on_ready = on_ready
        self.backends = backends
        self.policy: PolicySnapshot | None = None
        self.components: Components | None = None
        self.worker: Worker | None = None
        self.nc: Any = None
        self._stopping = asyncio.Event()

    def current_policy(self) -> PolicySnapshot:
        if self.policy is None:
            raise RuntimeError("no policy loaded")
        return self.policy

    async def start(self) -> None:
        try:
            self.policy = load_policy(self.settings.policy.directory)
        except PolicyError as error:
            raise ConfigError(f"policy does not load:\n{error}") from None
        self.components = build(self.settings, self.current_policy, self.backends)
        service = self.settings.service
        self.worker = Worker(
            self.components.pipeline,
            subject=self.settings.nats.subject,
            queue=self.settings.nats.queue_group,
            max_concurrency=service.max_concurrency,
            max_pending=service.max_pending,
        )
        log.info(
            "service_starting",
            issuer=self.components.issuer.public_key,
            xkey=self.components.xkey.public_key if self.components.xkey else None,
            accounts=self.settings.accounts,
            policy_digest=self.policy.digest,
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
        timeout = self.settings.service.drain_timeout
        if self.worker is not None:
            await self.worker.stop(timeout)
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.drain(), timeout=timeout)
            except Exception as error:  # noqa: BLE001 - closing must not fail the shutdown
                log.warning("nats_drain_failed", error=type(error).__name__)
                await self.nc.close()
        if self.components is not None:
            self.components.verifier.close()
        cancelled = self.worker.cancelled if self.worker else 0
        log.info("service_stopped", cancelled_requests=cancelled)

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, drain, and return the exit code (0)."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        signals = (signal.SIGTERM, signal.SIGINT)

        def on_signal() -> None:
            if self._stopping.is_set() and main is not None:
                main.cancel()  # a second signal: stop waiting for the drain
            self._stopping.set()

        for sig in signals:
            loop.add_signal_handler(sig, on_signal)
        try:
            await self.start()
            await self._stopping.wait()
            log.info("shutdown_started")
            await self.stop()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
        return 0
