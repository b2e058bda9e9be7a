"""A minimal HTTP GET over a raw socket, for the probe port (no client library needed)."""

from __future__ import annotations

import asyncio


async def http_get(port: int, path: str, *, method: str = "GET") -> tuple[int, str]:
    """(status, body) of ``method path`` on 127.0.0.1:``port``."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode()
