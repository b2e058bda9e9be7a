"""A minimal NATS client on a raw socket: INFO, CONNECT with chosen fields, PING → PONG or -ERR.

Used where a real library would refuse to send what we need (a forged nkey signature).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def raw_connect(
    port: int, fields: dict[str, Any], wait: float = 5.0, *, source: str | None = None
) -> tuple[dict[str, Any], str]:
    """Connect with CONNECT ``fields`` (``nonce`` in the INFO is passed to a ``sign`` callable
    under the key ``"sig"`` if it is callable); returns (INFO, first reply line after PING).
    ``source`` binds the client socket to another loopback address (127.0.0.2-.9)."""
    local = {"local_addr": (source, 0)} if source else {}
    opened = asyncio.open_connection("127.0.0.1", port, **local)
    reader, writer = await asyncio.wait_for(opened, wait)
    try:
        info_line = await asyncio.wait_for(reader.readline(), wait)
        info = json.loads(info_line.decode().removeprefix("INFO ").strip())
        connect = {
            "verbose": False,
            "pedantic": False,
            "lang": "raw",
            "version": "0",
            "protocol": 1,
        }
        for key, value in fields.items():
            connect[key] = value(info.get("nonce", "")) if callable(value) else value
        writer.write(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), wait)
        for _ in range(3):  # the server's first PING comes after ~1 s while a login is pending
            if line.strip() != b"PING":
                break
            line = await asyncio.wait_for(reader.readline(), wait)
        return info, line.decode().strip()
    finally:
        writer.close()
