"""Protocol-aware rules through a real nats-server (config mode, JetStream, MQTT and a
leafnode listener without authorization of its own, so MQTT clients and leaf remotes are
called out): MQTT client ids bound to the user (a raw MQTT 3.1.1 CONNECT from the test),
leafnode remotes admitted only by rules naming LEAFNODE (a second nats-server with a remote),
and `proxy_required` refused by the server for a direct connection (also in operator mode
with a scoped signing key)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from callout.credentials.passwords import hash_password
from callout.decision import Reason
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.operator_mode import OperatorModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.service.app import App
from tests import counts
from tests.integration.conftest import connect
from tests.integration.rawclient import raw_connect

pytestmark = pytest.mark.integration

PASSWORDS = {"dev-7": "dev7-pw", "bridge": "bridge-pw", "alice": "alice-pw", "edge": "edge-pw"}
_POLICY = """\
version: 1
defaults: {{account: APP}}
roles:
  sensor:
    connection_types: [MQTT]
    mqtt_client_id: ["{{{{user.name}}}}", "{{{{user.name}}}}-*"]
    publish: {{allow: ["sensors.>"]}}
    subscribe: {{allow: ["sensors.>"]}}
  leaf-bridge:
    connection_types: [LEAFNODE]
    publish: {{allow: ["bridge.>"]}}
    subscribe: {{allow: ["bridge.>"]}}
  edge:
    proxy_required: true
users:
  dev-7: {{password: "{dev-7}", roles: [sensor]}}
  bridge: {{password: "{bridge}", roles: [leaf-bridge]}}
  alice:
    password: "{alice}"
    publish: {{allow: ["bridge.>", "other.>"]}}
    subscribe: {{allow: ["bridge.>", "other.>"]}}
  edge: {{password: "{edge}", roles: [edge], publish: {{allow: ["edge.>"]}}}}
"""
CONNACK_ACCEPTED, CONNACK_NOT_AUTHORIZED = 0, 5


@dataclass(frozen=True)
class Hub:
    setup: ConfigModeSetup
    server: NatsServer
    mqtt_port: int
    leaf_port: int
    policies: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.setup.port}"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    directory = tmp_path_factory.mktemp("protocol")
    mqtt_port, leaf_port = free_port(), free_port()
    setup = ConfigModeSetup(
        directory / "keys",
        free_port(),
        jetstream=True,
        server_name="hub",
        extra_config=(
            f"mqtt {{ listen: 127.0.0.1:{mqtt_port} }}\n"
            f"leafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n"
        ),
    ).write()
    # MQTT keeps its sessions in JetStream of the account the callout places the client in.
    config = setup.config_file.read_text().replace("  APP {}", "  APP { jetstream: enabled }")
    setup.config_file.write_text(config)
    policies = directory / "policies"
    policies.mkdir()
    hashes = {name: hash_password(password) for name, password in PASSWORDS.items()}
    (policies / "policy.yaml").write_text(_POLICY.format(**hashes))
    with NatsServer(setup.config_file, setup.port) as server:
        yield Hub(setup, server, mqtt_port, leaf_port, policies)


@pytest.fixture
async def app(hub: Hub) -> AsyncIterator[App]:
    service = App(hub.setup.settings(hub.policies))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def decisions(app: App) -> dict[Reason, int]:
    return dict(counts.decisions(app.metrics))


def _field(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def mqtt_connect_packet(client_id: str, user: str, password: str) -> bytes:
    """An MQTT 3.1.1 CONNECT (section 3.1): clean session, user name and password."""
    flags = 0x80 | 0x40 | 0x02
    body = _field("MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
    body += _field(client_id) + _field(user) + _field(password)
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


async def mqtt_connack(port: int, client_id: str, user: str) -> int:
    """The return code of the server's CONNACK to our CONNECT."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(mqtt_connect_packet(client_id, user, PASSWORDS[user]))
        await writer.drain()
        connack = await asyncio.wait_for(reader.readexactly(4), 8)
    finally:
        writer.close()
        await writer.wait_closed()
    assert connack[:3] == b"\x20\x02\x00", connack
    return connack[3]


async def test_an_mqtt_client_must_use_its_own_client_id(hub: Hub, app: App) -> None:
    """CVE-2026-33215: a client id is a session; another user's id is refused at CONNECT."""
    assert await mqtt_connack(hub.mqtt_port, "dev-7-kitchen", "dev-7") == CONNACK_ACCEPTED
    assert await mqtt_connack(hub.mqtt_port, "dev-7", "dev-7") == CONNACK_ACCEPTED
    stolen = await mqtt_connack(hub.mqtt_port, "dev-8-kitchen", "dev-7")
    assert stolen == CONNACK_NOT_AUTHORIZED
    assert decisions(app)[Reason.MQTT_CLIENT_ID_NOT_ALLOWED] == 1


async def _until(condition: object, what: str, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _leaf_server(directory: Path, hub: Hub, user: str) -> NatsServer:
    directory.mkdir()
    port = free_port()
    remote = f"nats://{user}:{PASSWORDS[user]}@127.0.0.1:{hub.leaf_port}"
    config = directory / "leaf.conf"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nserver_name: leaf-{user}\n"
        f'leafnodes {{ reconnect: "250ms", remotes: [ {{ url: "{remote}" }} ] }}\n'
    )
    return NatsServer(config, port)


async def test_a_leaf_remote_bridges_only_what_its_leafnode_rule_grants(
    hub: Hub, app: App, tmp_path: Path
) -> None:
    """The bridge user's rule names LEAFNODE: its leaf connects into APP and carries
    `bridge.>`, not `other.>`."""
    hub_client = await connect(hub.url, user="alice", password=PASSWORDS["alice"])
    got: list[str] = []

    async def collect(message: nats.aio.msg.Msg) -> None:
        got.append(message.subject)

    await hub_client.subscribe("bridge.>", cb=collect)
    await hub_client.subscribe("other.>", cb=collect)
    await hub_client.flush()
    try:
        with _leaf_server(tmp_path / "leaf", hub, "bridge") as leaf:
            await _until(lambda: decisions(app).get(Reason.ALLOWED, 0) >= 2, "the leaf login")
            leaf_client = await connect(leaf.url)
            try:
                for _ in range(50):  # until the hub's interest has crossed the leaf connection
                    await leaf_client.publish("bridge.hello", b"hi")
                    await leaf_client.publish("other.hello", b"hi")
                    await leaf_client.flush()
                    await asyncio.sleep(0.1)
                    if "bridge.hello" in got:
                        break
            finally:
                await leaf_client.close()
    finally:
        await hub_client.close()
    assert "bridge.hello" in got
    assert "other.hello" not in got


async def test_a_users_password_reused_for_a_leaf_remote_opens_no_bridge(
    hub: Hub, app: App, tmp_path: Path
) -> None:
    """alice may log in as a client, but her rules do not name LEAFNODE."""
    with _leaf_server(tmp_path / "leaf", hub, "alice"):
        await _until(
            lambda: decisions(app).get(Reason.CONNECTION_TYPE_NOT_ALLOWED, 0) >= 1,
            "the refused leaf login",
        )
    assert decisions(app).get(Reason.ALLOWED, 0) == 0


async def test_proxy_required_makes_the_server_refuse_a_direct_connection(
    hub: Hub, app: App
) -> None:
    """The service allows edge but marks its JWT proxy_required; nats-server (2.12+) then
    refuses it, since the client did not come through a trusted proxy."""
    _, line = await raw_connect(hub.setup.port, {"user": "edge", "pass": PASSWORDS["edge"]})
    assert line.startswith("-ERR"), line
    assert "proxy connection required" in hub.server.log_text().lower()
    assert decisions(app)[Reason.ALLOWED] == 1
    _, line = await raw_connect(hub.setup.port, {"user": "alice", "pass": PASSWORDS["alice"]})
    assert line.startswith("PONG"), line


_SCOPED_POLICY = """\
version: 1
roles:
  edge: {{proxy_required: true}}
users:
  edge: {{password: "{hash}", roles: [edge], account: SCOPED}}
  plain: {{password: "{hash}", account: SCOPED}}
"""


async def test_proxy_required_holds_for_a_scoped_signing_key_too(tmp_path: Path) -> None:
    """A scoped key's users carry no permissions or limits, but proxy_required is neither:
    operator mode, a scoped key, and the server still refuses the direct connection."""
    setup = OperatorModeSetup(
        tmp_path / "keys",
        free_port(),
        target_accounts=("APP",),
        scoped_accounts=("SCOPED",),
        signing_keys=True,
        default_sentinel=True,
    ).write()
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text(_SCOPED_POLICY.format(hash=hash_password("pw")))
    with NatsServer(setup.config_file, setup.port) as server:
        service = App(setup.settings(policies))
        await service.start()
        try:
            _, plain = await raw_connect(setup.port, {"user": "plain", "pass": "pw"})
            _, edge = await raw_connect(setup.port, {"user": "edge", "pass": "pw"})
            assert decisions(service) == {Reason.ALLOWED: 2}
        finally:
            await service.stop()
        log = server.log_text()
    assert plain.startswith("PONG"), plain
    assert edge.startswith("-ERR"), edge
    assert "Proxy connection required" in log
