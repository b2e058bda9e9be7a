"""The service's own NATS connection: how fast it retries, and what it says about it.

Retries back off exponentially with jitter up to a cap, but only on repeated failures: after a
server restart the first reconnect is immediate and the next few come every
``nats.reconnect_wait`` (250 ms), so that the service is subscribed again before its clients'
own reconnects arrive (a reconnect storm finds a responder). A wrong URL or a refused login
slows down instead of failing four times a second forever.

The log tells state changes, not attempts: one warning when the connection is lost or a connect
fails, another only for a reason not told yet in that state, one line when it is back. URLs are
logged without credentials. A refused login of the service itself gets its own error line: it is a
configuration problem, not an outage.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats import errors as nats_errors

from callout.settings import redact_url

log = structlog.get_logger("callout.nats")

OWN_LOGIN_REFUSED = (
    "the server refused the service's own credentials (nats.user/password_file or creds_file)"
)


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number ``failures`` (1-based; 0 = the first try, at once)."""

    first: float = 0.25
    fast_attempts: int = 8  # ~2 s of fast retries: a server restart, not an outage
    cap: float = 10.0

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        if failures <= 0:
            return 0.0
        growth = max(0, failures - self.fast_attempts)
        ceiling = min(self.cap, self.first * 2.0 ** min(growth, 32))
        return ceiling / 2 + rand() * ceiling / 2  # "equal jitter": never below half


def reconnect_handler(backoff: Backoff) -> Callable[[list[Any], dict[str, Any]], Any]:
    """A nats-py ``reconnect_to_server_handler``: the server that failed least, after the
    delay its failure count earns (nats-py counts failures per server, reset on success)."""

    def choose(servers: list[Any], _info: dict[str, Any]) -> tuple[Any, float]:
        chosen = min(servers, key=lambda server: server.reconnects)
        return chosen, backoff.delay(chosen.reconnects)

    return choose


def describe(error: BaseException) -> str:
    """A short, secret-free reason for a connection error."""
    text = str(error).strip()
    # nats-py raises a plain Error("nats: 'Authorization Violation'") during CONNECT.
    if isinstance(error, nats_errors.AuthorizationError) or (
        "authorization violation" in text.lower()
    ):
        return OWN_LOGIN_REFUSED
    if isinstance(error, nats_errors.NoServersError):
        return "no server could be reached"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass
class ConnectionLog:
    """Logs the connection's state changes; repeated attempts with the same outcome are
    counted, not logged."""

    servers: Sequence[str]
    stopping: Callable[[], bool] = lambda: False
    _state: str = "connecting"
    _seen: set[str] = field(default_factory=set)  # reasons told since the last state change
    failures: int = 0

    @property
    def urls(self) -> list[str]:
        return [redact_url(url) for url in self.servers]

    def failed(self, error: BaseException, *, retry_in: float | None = None) -> None:
        reason = describe(error)
        self.failures += 1
        if reason in self._seen or self.stopping():
            log.debug("nats_retry", reason=reason, failures=self.failures)
            return
        self._seen.add(reason)
        fields: dict[str, Any] = {"servers": self.urls, "reason": reason}
        if retry_in is not None:
            fields["retry_in_s"] = round(retry_in, 3)
        if reason == OWN_LOGIN_REFUSED:
            log.error("nats_login_refused", **fields)
        elif self._state == "connecting":
            log.warning("nats_connect_failed", **fields)
        else:
            log.warning("nats_error", **fields)

    def connected(self, url: str | None) -> None:
        event = "nats_connected" if self._state == "connecting" else "nats_reconnected"
        log.info(event, url=redact_url(url or ""), after_failures=self.failures)
        self._state, self.failures = "connected", 0
        self._seen.clear()

    def disconnected(self) -> None:
        if self._state != "connected":
            return
        self._state = "disconnected"
        self._seen.clear()
        if self.stopping():
            log.info("nats_closed")
        else:
            log.warning("nats_disconnected", servers=self.urls)
