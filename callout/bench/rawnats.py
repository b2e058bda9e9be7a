"""Just enough of the NATS client protocol to log in, on a raw socket.

A full client library costs several times more CPU per connection than the server and hides
the service's cost; this speaks INFO → CONNECT (+ nonce signature) → PING and reads PONG or
-ERR. `Session` keeps a connection open and answers the server's PINGs (for storms).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from callout.protocol.nkeys import KeyPair

_CONNECT_BASE = {
    "verbose": False,
    "pedantic": False,
    "lang": "bench",
    "version": "0",
    "protocol": 1,
}


_MAX_PINGS = 3


@dataclass(frozen=True)
class Credential:
    """What one client presents: CONNECT fields, and an nkey to sign the nonce with."""

    fields: dict[str, Any] = field(default_factory=dict)
    nkey: KeyPair | None = None

    def connect_line(self, info: dict[str, Any]) -> bytes:
        body = dict(_CONNECT_BASE)
        body.update(self.fields)
        if self.nkey is not None:
            body["nkey"] = self.nkey.public_key
            nonce = str(info.get("nonce", ""))
            body["sig"] = base64.b64encode(self.nkey.sign(nonce.encode())).decode()
        return b"CONNECT " + json.dumps(body, separators=(",", ":")).encode() + b"\r\nPING\r\n"


@dataclass(frozen=True)
class Attempt:
    ok: bool
    latency: float
    error: str = ""


async def _handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    credential: Credential,
    limit: float,
) -> str:
    info_line = await asyncio.wait_for(reader.readline(), limit)
    if not info_line.startswith(b"INFO "):
        return "no INFO"
    info = json.loads(info_line[5:])
    writer.write(credential.connect_line(info))
    await writer.drain()
    for _ in range(_MAX_PINGS + 1):
        line = await asyncio.wait_for(reader.readline(), limit)
        if not line.startswith(b"PING"):
            break
        # the server's own keep-alive may come before the answer to ours: answer it
        writer.write(b"PONG\r\n")
    if line.startswith(b"PONG"):
        return ""
    return line.decode(errors="replace").strip() or "connection closed"


async def login(
    host: str, port: int, credential: Credential, limit: float, source: str | None = None
) -> Attempt:
    """One login attempt, start to finish, every step bounded by ``limit`` seconds; from the
    local address ``source`` when given (e.g. 127.0.0.2, for one of several client addresses)."""
    started = time.perf_counter()
    local = (source, 0) if source else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local), limit
        )
    except (OSError, TimeoutError) as failure:
        return Attempt(False, time.perf_counter() - started, f"connect: {type(failure).__name__}")
    try:
        problem = await _handshake(reader, writer, credential, limit)
    except (OSError, TimeoutError, ValueError) as failure:
        problem = type(failure).__name__
    finally:
        writer.close()
    return Attempt(not problem, time.perf_counter() - started, problem)


class Session:
    """A logged-in connection kept open; it answers PINGs and reports when the server drops it."""

    def __init__(self, host: str, port: int, credential: Credential, timeout: float) -> None:
        self.host, self.port, self.credential, self.timeout = host, port, credential, timeout
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None

    async def open(self) -> Attempt:
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout
            )
        except (OSError, TimeoutError) as failure:
            return Attempt(
                False, time.perf_counter() - started, f"connect: {type(failure).__name__}"
            )
        try:
            problem = await _handshake(reader, writer, self.credential, self.timeout)
        except (OSError, TimeoutError, ValueError) as failure:
            problem = type(failure).__name__
        if problem:
            writer.close()
            return Attempt(False, time.perf_counter() - started, problem)
        self._reader, self._writer = reader, writer
        return Attempt(True, time.perf_counter() - started)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def serve_until_closed(self) -> None:
        """Answer PINGs until the server closes the connection."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            return
        try:
            while line := await reader.readline():
                if line.startswith(b"PING"):
                    writer.write(b"PONG\r\n")
        except OSError:
            pass
        finally:
            writer.close()
            self._reader = self._writer = None
