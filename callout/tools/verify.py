"""`callout verify`: a preflight against the real server, before going live.

It reads the settings and keys, logs in as the service, and then watches one test login end
to end without needing the system account: a plain (non-queue) subscription on the callout
subject receives a copy of every authorization request the server sends to the callout
account, and ``$SYS.ACCOUNT.CLIENT.AUTH.ERR`` carries the server's own reason for each
refused login. From those it tells whether the server encrypts to our xkey, which version it
runs, whether the running service answered and whether the server accepted what our issuer
key signed; the policy decides the same request locally to show the permissions. Nothing is
published on the callout subject (the server forbids it) and the login uses a credential read
from a file. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nats.aio.client import Client

from callout.secretfiles import read_secret
from callout.service.connector import connect_options
from callout.service.runtime import Runtime
from callout.service.wiring import load_runtime
from callout.sessions.advisories import AUTH_ERROR_SUBJECT
from callout.settings import Settings
from callout.tools.checklist import Check, Status
from callout.tools.verifylogin import Capture, Outcome, end_to_end, issuer_key
from callout.tools.verifyprobes import audit_captured, audit_stream, service_running

SETTLE = 0.3  # seconds for copies and advisories to arrive after the login ends


@dataclass(frozen=True)
class ProbeLogin:
    """The credential of the test login: a user with a password file, or a token file."""

    user: str | None = None
    password_file: Path | None = None
    token_file: Path | None = None

    def connect_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.user is not None:
            options["user"] = self.user
        if self.password_file is not None:
            options["password"] = read_secret(self.password_file, "test login password")
        if self.token_file is not None:
            options["token"] = read_secret(self.token_file, "test login token")
        return options


async def verify(
    settings: Settings, login: ProbeLogin | None, *, expect: str | None, wait: float = 5.0
) -> list[Check]:
    """Every check, in order; `ConfigError` when the settings or keys do not load."""
    runtime = load_runtime(settings)
    login_options = login.connect_options() if login is not None else None
    checks = [_keys_check(runtime, settings)]
    options = {
        **connect_options(settings.nats),
        "allow_reconnect": False,
        "max_reconnect_attempts": 0,
        "reconnect_to_server_handler": None,
        "error_cb": _quiet,
        # past the server's auth timeout: a login it sends to the callout is refused, not cut
        "connect_timeout": max(settings.nats.connect_timeout, wait),
    }
    nc = Client()
    try:
        await nc.connect(**options)
    except Exception as error:  # noqa: BLE001 - every way a login fails is one check
        await _release(nc)
        checks.append(_service_login_failed(settings, error))
        return checks
    try:
        user = settings.nats.user or "the creds file's user"
        checks.append(Check("service login", Status.OK, f"connected as {user}"))
        capture = Capture(f"callout-verify-{secrets.token_hex(4)}", runtime)
        await nc.subscribe(settings.nats.subject, cb=capture.on_request)
        await nc.subscribe(AUTH_ERROR_SUBJECT, cb=capture.on_advisory)
        await nc.flush()
        checks.append(await service_running(nc, settings))
        audit = await audit_stream(nc, settings)
        if audit is not None:
            checks.append(audit[0])
        if login_options is None:
            checks.append(
                Check("test login", Status.SKIP, "no --login-* credential given: not checked")
            )
            return checks
        url = _without_userinfo(settings.nats.servers[0])
        credentials = {**login_options, "tls": options.get("tls")}
        outcome = await _login(url, credentials, wait, capture.marker)
        await nc.flush()
        await asyncio.sleep(SETTLE)
        checks += await end_to_end(settings, runtime, capture, outcome, expect)
        if audit is not None and audit[1] is not None:
            checks.append(await audit_captured(nc, settings, audit[1], outcome.result))
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
    return checks


async def _quiet(_error: Exception) -> None:
    """nats-py reports connection errors here too; the checks say what matters."""


def _keys_check(runtime: Runtime, settings: Settings) -> Check:
    xkey = runtime.xkey.public_key if runtime.xkey is not None else "none"
    issuer = issuer_key(runtime)
    detail = f"issuer {issuer}, xkey {xkey}, policy {runtime.policy.digest[:12]}"
    return Check("settings and keys", Status.OK, f"{detail} ({settings.mode.value} mode)")


def _service_login_failed(settings: Settings, error: Exception) -> Check:
    text = str(error).lower()
    if "authorization violation" in text or isinstance(error, TimeoutError):
        return Check(
            "service login",
            Status.FAIL,
            "the server refused the service's own login",
            f"check nats.user / password_file (or creds_file); if they are right, the user"
            f" {settings.nats.user or ''} is not in auth_callout.auth_users, so the server sent"
            " the service's own login to the callout",
        )
    return Check(
        "service login",
        Status.FAIL,
        f"could not connect to {', '.join(settings.nats.servers)}: {type(error).__name__}",
        "check nats.servers and that nats-server is running",
    )


def _without_userinfo(url: str) -> str:
    """The server URL without the service's own ``user:password@``, if it has one."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


async def _login(url: str, credentials: dict[str, Any], wait: float, marker: str) -> Outcome:
    client = Client()
    try:
        await client.connect(
            url,
            name=marker,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=max(1, round(wait)),  # nats-py takes whole seconds
            error_cb=_quiet,
            **credentials,
        )
    except Exception as error:  # noqa: BLE001 - a refusal is an outcome, not a fault
        await _release(client)
        refused = "authorization violation" in str(error).lower()
        detail = "Authorization Violation" if refused else type(error).__name__
        return Outcome("refused" if refused else "error", detail, marker)
    with contextlib.suppress(Exception):
        await client.close()
    return Outcome("allowed", "connected", marker)


async def _release(client: Client) -> None:
    """Close the socket of a refused connect: nats-py leaves it open."""
    transport = client._transport
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.close()  # type: ignore[no-untyped-call]
            await transport.wait_closed()  # type: ignore[no-untyped-call]
