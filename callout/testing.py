"""In-process helpers for tests of code that uses the service, like `structlog.testing`.

`ServerSimulator` signs (and optionally seals) authorization requests exactly as nats-server does;
`captured_logs` captures the service's log lines. Nothing here starts a process: the dev server
(`callout.devserver`) does that."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

from callout.observability import logs
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole
from callout.protocol.requests import request_claims

__all__ = ["ServerSimulator", "captured_logs"]


@contextmanager
def captured_logs(level: str = "debug") -> Iterator[io.StringIO]:
    """Everything logged meanwhile (structlog and stdlib), rendered as JSON lines as it would
    reach stdout; the previous logging set-up is restored afterwards."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, previous = root.handlers[:], root.level
    logs.configure(level, "json", stream=buffer, cache=False)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()  # also retires the direct JSON writer (see logs.direct_json)
        root.handlers[:] = handlers
        root.setLevel(previous)


@dataclass
class ServerSimulator:
    """Signs (and optionally seals) authorization requests exactly as nats-server does.

    For pipeline tests, fuzzing and benchmarks without a server: same claims (from
    `callout.protocol.requests.request_claims`), same key roles, same ``xkv1`` boxes and
    ``Nats-Server-Xkey`` header.
    """

    key: KeyPair = field(default_factory=lambda: KeyPair.generate(KeyRole.SERVER))
    xkey: CurveKeyPair = field(default_factory=CurveKeyPair.generate)
    name: str = "sim"
    version: str = "2.15.1"  # server_id.version

    def claims(
        self,
        *,
        connect: dict[str, Any] | None = None,
        client: dict[str, Any] | None = None,
        user_nkey: str | None = None,
        callout_account: str = "",
        now: int,
        timeout: int = 2,
        encrypted: bool = False,
    ) -> dict[str, Any]:
        server: dict[str, Any] = {
            "name": self.name,
            "host": "127.0.0.1",
            "id": self.key.public_key,
            "version": self.version,
        }
        if encrypted:
            server["xkey"] = self.xkey.public_key
        return request_claims(
            server=server,
            client=client,
            connect={"lang": "python3", "version": "2.16.0", **(connect or {})},
            user_nkey=user_nkey or KeyPair.generate(KeyRole.USER).public_key,
            account=callout_account or KeyPair.generate(KeyRole.ACCOUNT).public_key,
            now=now,
            timeout=timeout,
        )

    def sign(
        self, claims: dict[str, Any], *, now: int, seal_for: str | None = None
    ) -> tuple[bytes, str | None]:
        """The message payload and the xkey header value (None when not sealed)."""
        from callout.protocol import jwt, xkey  # noqa: PLC0415 - keep the module import light

        token = jwt.encode(claims, self.key, iat=now).encode("ascii")
        if seal_for is None:
            return token, None
        return xkey.seal(token, self.xkey, seal_for), self.xkey.public_key

    def request(
        self, *, now: int, seal_for: str | None = None, **fields: Any
    ) -> tuple[bytes, str | None]:
        return self.sign(
            self.claims(now=now, encrypted=seal_for is not None, **fields),
            now=now,
            seal_for=seal_for,
        )
