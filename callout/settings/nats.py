"""The service's NATS connection: servers, its own login, TLS, timeouts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from callout.settings.base import Section
from callout.settings.durations import Seconds

_NATS_SCHEMES = ("nats", "tls", "ws", "wss")
_USERINFO = re.compile(r"[^/@]+@")


def redact_url(url: str) -> str:
    """``url`` without ``user:password@``: safe to log."""
    return _USERINFO.sub("***@", url)


def _nats_url(url: str) -> str:
    parsed = urlsplit(url)
    problem = None
    if "://" not in url or parsed.scheme not in _NATS_SCHEMES:
        problem = f"starts with one of {', '.join(s + '://' for s in _NATS_SCHEMES)}"
    elif not parsed.hostname:
        problem = "names a host"
    else:
        try:
            parsed.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            problem = "has a port number after the colon"
    if problem is not None:
        raise ValueError(
            f"{redact_url(url)!r} is not a NATS URL: a URL {problem}, e.g. nats://host:4222"
        )
    return url


class NatsSettings(Section):
    servers: list[Annotated[str, AfterValidator(_nats_url)]] = Field(
        default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1
    )
    user: str | None = None
    password_file: Path | None = None
    creds_file: Path | None = None
    name: str = "nats-auth-callout"
    subject: str = "$SYS.REQ.USER.AUTH"
    queue_group: str = "auth-callout"
    connect_timeout: Seconds = 2.0
    # Short: after a server restart the service must be subscribed again before the clients'
    # own reconnects (nats.go: 2 s) arrive, or their requests find no responder.
    reconnect_wait: Seconds = 0.25
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> NatsSettings:
        if self.creds_file and (self.user or self.password_file):
            raise ValueError("use either creds_file or user/password_file, not both")
        if self.password_file and not self.user:
            raise ValueError("password_file needs user")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self
