"""The CONNECT relay the operator-mode environments use for sentinel clients: it adds the
user's fields to the first CONNECT and passes every other byte through, both ways. The far
side here is a socket server standing in for nats-server (the port boundary)."""

from __future__ import annotations

import asyncio
import json

from tests.integration.relay import ConnectRelay

INFO = b'INFO {"server_id": "x", "nonce": "abc"}\r\n'


async def test_the_relay_merges_fields_into_connect_and_passes_the_rest_through() -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(INFO)
        await writer.drain()
        for _ in range(2):
            await received.put(await reader.readline())
        writer.write(b"PONG\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    relay = await ConnectRelay(server.sockets[0].getsockname()[1], {"user": "alice"}).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        assert await asyncio.wait_for(reader.readline(), 5) == INFO
        writer.write(b'CONNECT {"jwt": "J", "sig": "S", "user": "x"}\r\nPING\r\n')
        await writer.drain()
        connect = await asyncio.wait_for(received.get(), 5)
        assert connect.startswith(b"CONNECT ")
        assert json.loads(connect[len(b"CONNECT ") :]) == {"jwt": "J", "sig": "S", "user": "alice"}
        assert await asyncio.wait_for(received.get(), 5) == b"PING\r\n"
        assert await asyncio.wait_for(reader.readline(), 5) == b"PONG\r\n"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the far side's close arrives
        writer.close()
    finally:
        await relay.close()
        server.close()
        await server.wait_closed()


async def test_a_closed_relay_accepts_no_more_clients() -> None:
    relay = await ConnectRelay(1, {}).start()
    port = relay.port
    await relay.close()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    writer.close()
    raise AssertionError("a closed relay still accepted a connection")
