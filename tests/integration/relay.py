"""A relay on loopback at the client's port boundary that adds fields to the client's CONNECT.

Go clients and the nats CLI send a sentinel's JWT and signature *and* the user's name and
password in one CONNECT (`--creds sentinel.creds --user alice --password ...`); nats-py sends
no user or password once creds are set (docs/protocol.md#nats-py-behaviour). A nats-py client
connected through this relay sends what those clients send, without changing nats-py: the
relay passes every byte through and merges ``extra`` into the first CONNECT line. The nonce
signature stays valid: it signs the server's nonce, not the CONNECT line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

CONNECT = b"CONNECT "


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until either side closes, then close the writer."""
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class ConnectRelay:
    """``127.0.0.1:port`` → ``127.0.0.1:upstream``, one upstream connection per client
    connection (so a reconnect goes through it too); closed with `close`."""

    def __init__(self, upstream: int, extra: dict[str, Any]) -> None:
        self.upstream = upstream
        self.extra = extra
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> ConnectRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _rewrite(self, line: bytes) -> bytes:
        if not line.startswith(CONNECT):
            return line
        options = {**json.loads(line[len(CONNECT) :]), **self.extra}
        return CONNECT + json.dumps(options).encode() + b"\r\n"

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        server_w: asyncio.StreamWriter | None = None
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream)

            async def upward() -> None:
                # nats-py's first line after the INFO is its CONNECT.
                with contextlib.suppress(ConnectionError, OSError, ValueError):
                    server_w.write(self._rewrite(await client_r.readline()))
                await _pump(client_r, server_w)

            await asyncio.gather(upward(), _pump(server_r, client_w))
        except (OSError, asyncio.CancelledError):
            # the upstream is gone, or `close` ended us: end normally (a cancelled connection
            # task is logged as an error by asyncio's stream server when it collects it)
            pass
        finally:
            for writer in (server_w, client_w):
                if writer is not None:
                    writer.close()
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
