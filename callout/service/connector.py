"""Opening the service's own NATS connection: nats-py options from the settings, and the
initial connect, retried with `Backoff` until it succeeds or the service is asked to stop.

A sidecar starts before its nats-server, so a failed first connect is not fatal. Once
connected, nats-py reconnects by itself, paced by `reconnect_handler`; the callbacks here
report what happens to `ConnectionLog` and the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any

from nats import errors as nats_errors
from nats.aio.client import Client as NatsClient

from callout.observability.metrics import Metrics
from callout.secretfiles import read_secret
from callout.service.connection import Backoff, ConnectionLog, reconnect_handler
from callout.service.login import CredsLogin
from callout.settings import NatsSettings


def connect_options(settings: NatsSettings) -> dict[str, Any]:
    """nats-py connect() keyword arguments; the password is read from its file here."""
    options: dict[str, Any] = {
        "servers": settings.servers,
        "name": settings.name,
        "connect_timeout": settings.connect_timeout,
        "reconnect_time_wait": settings.reconnect_wait,
        # Each server twice per initial attempt (the service's own backoff is between
        # attempts); `Connector.connect_once` lifts the limit once connected.
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


def creds_expiry(options: dict[str, Any]) -> Callable[[], int | None]:
    """When the creds the service logs in with expire (None: never, or no creds file)."""
    login = getattr(options.get("signature_cb"), "__self__", None)
    if not isinstance(login, CredsLogin):
        return lambda: None
    return lambda: login.creds.expires


class Connector:
    """Connects with ``options`` (from `connect_options`), retrying until ``stopping`` is set."""

    def __init__(
        self,
        settings: NatsSettings,
        options: dict[str, Any],
        metrics: Metrics,
        stopping: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.options = options
        self.metrics = metrics
        self.stopping = stopping
        self.log = ConnectionLog(settings.servers, stopping.is_set)
        self.nc: NatsClient | None = None

    async def connect(self) -> NatsClient | None:
        """The connected client, or None when stop was asked first."""
        backoff = Backoff(first=self.settings.reconnect_wait)
        attempts = 0
        while not self.stopping.is_set():
            try:
                self.nc = await self.connect_once()
            except Exception as error:  # noqa: BLE001 - every connect failure is retried
                attempts += 1
                delay = backoff.delay(attempts)
                if not isinstance(error, nats_errors.NoServersError):  # its cause is logged
                    self.log.failed(error, retry_in=delay)
            else:
                return self.nc
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=delay)
        return None

    async def connect_once(self) -> NatsClient | None:
        """One nats-py connect (each server tried twice), abandoned when stop is asked."""
        nc = NatsClient()
        connecting = asyncio.ensure_future(
            nc.connect(
                **self.options,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        )
        stopping = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if connecting.done():
            connecting.result()
            # Connected: from now on nats-py reconnects forever, paced by reconnect_handler.
            nc.options["max_reconnect_attempts"] = -1
            self.log.connected(_url(nc))
            return nc
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await connecting
        with contextlib.suppress(Exception):
            await nc.close()
        return None

    async def _on_error(self, error: Exception) -> None:
        self.log.failed(error)

    async def _on_disconnected(self) -> None:
        self.log.disconnected()

    async def _on_reconnected(self) -> None:
        self.metrics.reconnected()
        self.log.connected(_url(self.nc))


def _url(nc: NatsClient | None) -> str | None:
    url = nc.connected_url if nc is not None else None
    return url.geturl() if url is not None else None
