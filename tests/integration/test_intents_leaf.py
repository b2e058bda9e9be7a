"""A ``jetstream`` intent with ``domain`` across a leafnode, on the wire: a hub server (JetStream
domain ``hub``, no callout) and a leaf server (domain ``leaf``, the callout in config mode)
whose account APP is bound to the hub's APP over a leafnode connection, both on 127.0.0.1.

The client logs in to the leaf through the callout and uses the hub's domain
(``nats-py jetstream(domain="hub")``): its requests go out as ``$JS.hub.API...``, which the leaf
(another domain) checks as written and forwards; the hub maps them to its ``$JS.API``. So here
the refusal is reported on the ``$JS.hub.API`` subject, where a server of the stream's own
domain reports ``$JS.API`` (test_intents.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StreamConfig

from callout.devserver.config_mode import config_safe_password
from callout.devserver.processes import NatsServer, free_port
from callout.service.app import App
from tests.integration.intent_env import DOMAIN, IntentServer, intent_server

pytestmark = pytest.mark.integration

LEAF_DOMAIN = "leaf"
PATIENT = 10.0  # seconds an allowed call may take on a busy machine
SHORT = 0.5  # seconds to wait on a refused call (the refusal is asserted separately)


@dataclass(frozen=True)
class Hub:
    server: NatsServer
    admin_password: str


def _hub_config(directory: Path, port: int, leaf_port: int, admin: str, leaf: str) -> Path:
    config = directory / "hub.conf"
    config.write_text(
        "\n".join(
            [
                f"listen: 127.0.0.1:{port}",
                "server_name: hub",
                f'jetstream {{ store_dir: "{directory / "jetstream"}", domain: {DOMAIN} }}',
                "accounts {",
                "  APP {",
                "    jetstream: enabled",
                f'    users: [{{user: admin, password: "{admin}"}}]',
                "  }",
                "}",
                "leafnodes {",
                f"  listen: 127.0.0.1:{leaf_port}",
                f'  authorization {{ users: [{{user: leaf, password: "{leaf}", account: APP}}] }}',
                "}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, IntentServer]]:
    directory = tmp_path_factory.mktemp("leaf-domain")
    hub_port, leaf_port = free_port(), free_port()
    admin, leaf = config_safe_password(), config_safe_password()
    remote = f"nats-leaf://leaf:{leaf}@127.0.0.1:{leaf_port}"
    hub_config = _hub_config(directory, hub_port, leaf_port, admin, leaf)
    setup, policy_dir = intent_server(
        directory / "leaf",
        free_port(),
        server_name="leaf",
        jetstream_domain=LEAF_DOMAIN,
        extra_config=f'leafnodes {{ remotes: [{{url: "{remote}", account: APP}}] }}',
    )
    with (
        NatsServer(hub_config, hub_port) as hub,
        NatsServer(setup.config_file, setup.port) as leaf_server,
    ):
        yield Hub(hub, admin), IntentServer(setup, leaf_server, policy_dir)


@pytest.fixture
async def leaf(servers: tuple[Hub, IntentServer]) -> AsyncIterator[IntentServer]:
    _, leaf_env = servers
    app = App(leaf_env.setup.settings(leaf_env.policy_dir))
    await app.start()
    try:
        yield leaf_env
    finally:
        await app.stop()


async def _hub_admin(hub: Hub) -> Client:
    return await nats.connect(
        hub.server.url, user="admin", password=hub.admin_password, allow_reconnect=False
    )


async def _reachable(js: JetStreamContext) -> None:
    """Wait (bounded) until the leafnode connection carries the hub's JetStream API."""
    for _ in range(50):  # bounded: about 10 s
        try:
            await js.stream_info("ORDERS", subjects_filter=None)
        except (TimeoutError, nats.errors.NoRespondersError):
            await asyncio.sleep(0.2)
        else:
            return
    pytest.fail("the hub's JetStream did not answer through the leafnode within 10 s")


async def test_a_leaf_client_consumes_from_the_hub_domain_and_only_its_consumer(
    servers: tuple[Hub, IntentServer], leaf: IntentServer
) -> None:
    """``domain: hub`` on the leaf: pull, fetch and ack on the hub's stream through
    ``$JS.hub.API``; another consumer of the same stream is refused on its exact
    ``$JS.hub.API`` subject, at the leaf."""
    hub, _ = servers
    admin = await _hub_admin(hub)
    try:
        hub_js = admin.jetstream(timeout=PATIENT)
        await hub_js.add_stream(StreamConfig(name="ORDERS", subjects=["orders.>"]))
        for name in ("worker", "other"):
            await hub_js.add_consumer("ORDERS", ConsumerConfig(durable_name=name))
        await hub_js.publish("orders.1", b"order")
        async with leaf.client("remote") as client:
            js = client.nc.jetstream(domain=DOMAIN, timeout=PATIENT)
            await _reachable(js)
            sub = await js.pull_subscribe("orders.>", durable="worker", stream="ORDERS")
            messages = await sub.fetch(1, timeout=PATIENT)
            assert [m.data for m in messages] == [b"order"]
            await messages[0].ack_sync(timeout=PATIENT)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(js.consumer_info("ORDERS", "other"), SHORT)
            assert await client.violation("Publish", f"$JS.{DOMAIN}.API.CONSUMER.INFO.ORDERS.other")
        info = await hub_js.consumer_info("ORDERS", "worker")
        assert info.ack_floor.stream_seq == 1  # the ack crossed the leafnode to the hub
        assert info.num_ack_pending == 0
    finally:
        await admin.close()
