"""Shutdown and request budgets with a directory that hangs: a TCP listener on loopback that
accepts connections and never answers (for ``ldap://`` and for ``ldaps://``, where the TLS
handshake never completes).

- SIGTERM exits within ``drain_timeout`` plus the close margin, whatever the directory does;
- a second signal forces a clean exit (exit 1, ``shutdown_forced``, no traceback);
- a directory deadline longer than the request's life still gets the client a signed deny
  before the server gives up (the budget comes from the request's ``exp``).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callout.decision import Reason
from callout.devserver.service_process import ServiceProcess, write_settings
from callout.service.app import CLOSE_MARGIN, App
from tests.counts import decisions, drops
from tests.integration.environments import Environment
from tests.integration.rawclient import raw_connect

pytestmark = pytest.mark.integration

DRAIN = 1.0
# Seconds a stop may take on top of the drain (interpreter exit, a loaded CI machine); the
# bug this guards against is a process that never exits.
SLACK = 5.0


class Hang:
    """A TCP listener on 127.0.0.1 that accepts and never sends a byte."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.1)  # the accept loop looks at `stopping` this often
        self.port = self.socket.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        for _ in range(100_000):  # at most ~3 hours at 0.1 s per idle turn
            if self.stopping.is_set():
                return
            try:
                conn, _ = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.socket.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def hang() -> Iterator[Hang]:
    listener = Hang()
    try:
        yield listener
    finally:
        listener.close()


def hanging_ldap(hang: Hang, scheme: str, secret: Path, **changes: Any) -> dict[str, Any]:
    secret.write_text("service-pw")
    secret.chmod(0o600)
    return {
        "type": "ldap",
        "urls": [f"{scheme}://127.0.0.1:{hang.port}"],
        "allow_plaintext": scheme == "ldap",
        "bind_dn": "cn=callout,dc=example,dc=org",
        "bind_password_file": str(secret),
        "user_base": "ou=people,dc=example,dc=org",
        "groups": {"mode": "none"},
        **changes,
    }


def replica(deployment: Environment, directory: Path, **overrides: Any) -> ServiceProcess:
    settings = deployment.settings(**overrides)
    config = write_settings(settings, directory / "replica.yaml")
    return ServiceProcess(config, directory / "replica.log")


async def _login_in_flight(deployment: Environment) -> asyncio.Task[Any]:
    fields = deployment.raw_fields({"user": "dave", "pass": "dave-pw"})
    login = asyncio.create_task(raw_connect(deployment.server.port, fields))
    await asyncio.sleep(0.3)  # the request reaches the service and waits on the directory
    return login


@pytest.mark.parametrize("scheme", ["ldap", "ldaps"])
async def test_sigterm_while_the_directory_hangs_exits_within_the_drain_timeout(
    accounts: Environment, hang: Hang, tmp_path: Path, scheme: str
) -> None:
    """Threads blocked on the directory are abandoned, never joined at exit."""
    backends = [hanging_ldap(hang, scheme, tmp_path / "bind-pw"), {"type": "static"}]
    process = replica(accounts, tmp_path, backends=backends, service={"drain_timeout": f"{DRAIN}s"})
    try:
        process.start()
        await asyncio.to_thread(process.wait_for, "service_ready", 30.0)
        login = await _login_in_flight(accounts)
        assert process.process is not None
        signalled = time.monotonic()
        process.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.process.wait, DRAIN + CLOSE_MARGIN + SLACK)
        took = time.monotonic() - signalled
        await asyncio.gather(login, return_exceptions=True)
    finally:
        process.stop()
    assert code == 0
    assert "service_stopped" in process.text()
    sys.stdout.write(
        f"\n{scheme}:// hanging, drain_timeout {DRAIN:g}s: exited {took:.2f}s after SIGTERM\n"
    )


async def test_a_second_signal_forces_a_clean_exit(
    accounts: Environment, hang: Hang, tmp_path: Path
) -> None:
    """The drain would wait (a login stuck on the directory, a long leeway); Ctrl-C twice
    ends it at once: exit 1, one log line, no traceback."""
    ldap = hanging_ldap(hang, "ldap", tmp_path / "bind-pw", timeout="5s", deadline="5s")
    process = replica(
        accounts,
        tmp_path,
        backends=[ldap, {"type": "static"}],
        service={"drain_timeout": "30s", "request_leeway": "10s"},
    )
    try:
        process.start()
        await asyncio.to_thread(process.wait_for, "service_ready", 30.0)
        login = await _login_in_flight(accounts)
        assert process.process is not None
        process.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait_for, "shutdown_started", 10.0)
        process.process.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(process.process.wait, 10 + SLACK)
        await asyncio.gather(login, return_exceptions=True)
    finally:
        process.stop()
    text = process.text()
    assert code == 1
    assert "shutdown_forced" in text
    assert "Traceback" not in text, [line for line in text.splitlines() if line[:1] != "{"]


async def test_a_deadline_longer_than_the_request_still_gets_a_signed_deny(
    accounts: Environment, hang: Hang, tmp_path: Path
) -> None:
    """LDAP may take 5 s by its settings; the request lives 2 s: the backend is cut off at
    the request's exp minus the margin to sign, and the client is refused by an answer
    (counted as a decision), not by the server's timeout (a drop)."""
    ldap = hanging_ldap(
        hang, "ldap", tmp_path / "bind-pw", connect_timeout="5s", timeout="5s", deadline="5s"
    )
    app = App(accounts.settings(backends=[ldap, {"type": "static"}]))
    await app.start()
    try:
        fields = accounts.raw_fields({"user": "dave", "pass": "dave-pw"})
        _, line = await raw_connect(accounts.server.port, fields)
    finally:
        await app.stop()
    assert "Authorization Violation" in line
    assert decisions(app.metrics) == {Reason.BACKEND_UNAVAILABLE: 1}
    assert drops(app.metrics) == {}
