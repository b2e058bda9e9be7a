"""Grants by intent, verified on the wire: a client holding exactly one intent can do what it
says with nats-py's JetStream / KV / object-store / micro API, and is refused the
neighbouring things (another consumer, stream, bucket, key or inbox; writing when reading).

One nats-server with JetStream (domain ``hub``) on 127.0.0.1 per mode: config mode, and
operator mode with JetStream enabled in the target account's JWT (every test runs against
both); the callout runs per test. Refusals are asserted as the server's permission violation
on the exact subject, not as a timeout, so a missing stream cannot pass for a denied one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from nats.js.api import ConsumerConfig, KeyValueConfig, StreamConfig
from nats.micro import add_service
from nats.micro.request import Request

from callout.decision import Reason
from callout.devserver.processes import NatsServer, free_port
from callout.policy.intents import inbox_prefix
from callout.service.app import App
from tests import counts
from tests.integration.backends.idp import AUDIENCE, ISSUER, SigningKey, claims, jwks_server, mint
from tests.integration.conftest import connect
from tests.integration.intent_env import ADMIN, DOMAIN, MODES, IntentServer, intent_server
from tests.integration.rawclient import raw_connect

pytestmark = pytest.mark.integration

SHORT = 0.5  # seconds to wait on a refused call (the refusal itself is asserted separately)
PATIENT = 10.0  # seconds an allowed call may take on a busy machine


async def refused(call: Awaitable[object]) -> None:
    """``call`` gets no answer: the server dropped its request (asserted by the caller as a
    permissions violation on the exact subject). Allowed calls keep the patient timeout."""
    with pytest.raises(TimeoutError):  # nats-py's TimeoutError is one too
        await asyncio.wait_for(call, SHORT)


@pytest.fixture(scope="module", params=MODES)
def intent_nats(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[IntentServer]:
    """The server, in config mode and in operator mode (every test runs against both)."""
    directory = tmp_path_factory.mktemp(f"intents-{request.param}")
    setup, policy_dir = intent_server(directory, free_port(), request.param)
    with NatsServer(setup.config_file, setup.port) as server:
        yield IntentServer(setup, server, policy_dir)


@pytest.fixture
async def env(intent_nats: IntentServer) -> AsyncIterator[IntentServer]:
    app = App(intent_nats.setup.settings(intent_nats.policy_dir))
    await app.start()
    try:
        async with intent_nats.client(ADMIN) as admin:
            await _provision(admin.nc)
        yield intent_nats
    finally:
        await app.stop()


async def _provision(nc: nats.NATS) -> None:
    """Streams, consumers and buckets, as an operator creates them (idempotent)."""
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="ORDERS", subjects=["orders.>"]))
    await js.add_stream(StreamConfig(name="BILLING", subjects=["billing.>"]))
    for name in ("worker", "other"):
        config = ConsumerConfig(durable_name=name, ack_policy="explicit")
        await js.add_consumer("ORDERS", config)
    await js.add_consumer("BILLING", ConsumerConfig(durable_name="worker", ack_policy="explicit"))
    await js.purge_stream("ORDERS")
    await js.purge_stream("BILLING")
    profiles = await js.create_key_value(KeyValueConfig(bucket="profiles", direct=True))
    await profiles.put("users.kvreader.email", b"reader@example.org")
    await profiles.put("users.kvwriter.email", b"writer@example.org")
    settings = await js.create_key_value(KeyValueConfig(bucket="settings"))
    await settings.put("theme", b"dark")
    await js.create_key_value(KeyValueConfig(bucket="secrets"))
    files = await js.create_object_store("files")
    await files.put("report.txt", b"quarterly numbers")
    await js.create_object_store("vault")


async def _publish_orders(env: IntentServer, count: int) -> None:
    async with env.client(ADMIN) as admin:
        js = admin.nc.jetstream()
        for index in range(count):
            await js.publish(f"orders.{index}", b"order")


async def test_consume_pulls_and_acks_from_its_consumer_only(env: IntentServer) -> None:
    await _publish_orders(env, 2)
    async with env.client("consumer") as client:
        js = client.nc.jetstream(timeout=PATIENT)
        sub = await js.pull_subscribe("orders.>", durable="worker", stream="ORDERS")
        messages = await sub.fetch(1, timeout=PATIENT)
        assert [m.data for m in messages] == [b"order"]
        await messages[0].ack_sync(timeout=PATIENT)
        await refused(js.pull_subscribe("orders.>", durable="other", stream="ORDERS"))
        assert await client.violation("Publish", "$JS.API.CONSUMER.INFO.ORDERS.other")
        await refused(js.pull_subscribe("billing.>", durable="worker", stream="BILLING"))
        assert await client.violation("Publish", "$JS.API.CONSUMER.INFO.BILLING.worker")
        await client.nc.publish("orders.forged", b"x")
        assert await client.violation("Publish", "orders.forged")
    async with env.client(ADMIN) as admin:
        info = await admin.nc.jetstream().consumer_info("ORDERS", "worker")
    assert info.ack_floor.stream_seq >= 1  # the consumer's ack reached the server
    assert info.num_ack_pending == 0


async def test_consume_any_covers_every_consumer_of_that_stream_only(env: IntentServer) -> None:
    await _publish_orders(env, 1)
    async with env.client("anyconsumer") as client:
        js = client.nc.jetstream(timeout=PATIENT)
        for durable in ("worker", "other"):
            sub = await js.pull_subscribe("orders.>", durable=durable, stream="ORDERS")
            messages = await sub.fetch(1, timeout=PATIENT)
            await messages[0].ack_sync(timeout=PATIENT)
        await refused(js.pull_subscribe("billing.>", durable="worker", stream="BILLING"))
        assert await client.violation("Publish", "$JS.API.CONSUMER.INFO.BILLING.worker")


async def test_publish_gets_acks_and_nothing_else(env: IntentServer) -> None:
    async with env.client("publisher") as client:
        js = client.nc.jetstream(timeout=PATIENT)
        ack = await js.publish("orders.new", b"order", stream="ORDERS")
        assert ack.stream == "ORDERS"
        await refused(js.publish("billing.new", b"bill", stream="BILLING"))
        assert await client.violation("Publish", "billing.new")
        await refused(js.pull_subscribe("orders.>", durable="worker", stream="ORDERS"))
        assert await client.violation("Publish", "$JS.API.CONSUMER.INFO.ORDERS.worker")


async def test_manage_runs_one_streams_lifecycle_and_no_other(env: IntentServer) -> None:
    async with env.client("manager") as client:
        js = client.nc.jetstream(timeout=PATIENT)
        await js.add_stream(StreamConfig(name="SCRATCH", subjects=["scratch.>"]))
        await js.add_consumer("SCRATCH", ConsumerConfig(durable_name="c1"))
        assert [c.name for c in await js.consumers_info("SCRATCH")] == ["c1"]
        await js.delete_consumer("SCRATCH", "c1")
        await js.purge_stream("SCRATCH")
        assert await js.delete_stream("SCRATCH")
        await refused(js.delete_stream("ORDERS"))
        assert await client.violation("Publish", "$JS.API.STREAM.DELETE.ORDERS")
        await refused(js.add_stream(StreamConfig(name="OTHER", subjects=["other.>"])))
        assert await client.violation("Publish", "$JS.API.STREAM.CREATE.OTHER")


async def test_domain_consume_goes_through_the_domain_prefix(env: IntentServer) -> None:
    await _publish_orders(env, 1)
    async with env.client("remote") as client:
        js = client.nc.jetstream(domain=DOMAIN, timeout=PATIENT)
        sub = await js.pull_subscribe("orders.>", durable="worker", stream="ORDERS")
        messages = await sub.fetch(1, timeout=PATIENT)
        assert [m.data for m in messages] == [b"order"]
        await messages[0].ack_sync(timeout=PATIENT)
        await refused(js.consumer_info("ORDERS", "other"))
        # the server maps $JS.hub.API to $JS.API first, then checks (and reports) that
        assert await client.violation("Publish", "$JS.API.CONSUMER.INFO.ORDERS.other")


async def test_kv_keys_filter_limits_reads_and_writes_to_the_own_keys(env: IntentServer) -> None:
    async with env.client("kvreader") as reader:
        kv = await reader.nc.jetstream(timeout=PATIENT).key_value("profiles")
        assert (await kv.get("users.kvreader.email")).value == b"reader@example.org"
        await refused(kv.get("users.kvwriter.email"))
        assert await reader.violation(
            "Publish", "$JS.API.DIRECT.GET.KV_profiles.$KV.profiles.users.kvwriter.email"
        )
        await refused(kv.put("users.kvreader.email", b"forged"))
        assert await reader.violation("Publish", "$KV.profiles.users.kvreader.email")
    async with env.client("kvwriter") as writer:
        kv = await writer.nc.jetstream(timeout=PATIENT).key_value("profiles")
        await kv.put("users.kvwriter.email", b"new@example.org")
        assert (await kv.get("users.kvwriter.email")).value == b"new@example.org"
        await kv.delete("users.kvwriter.phone")
        await refused(kv.put("users.kvreader.email", b"forged"))
        assert await writer.violation("Publish", "$KV.profiles.users.kvreader.email")


async def test_kv_write_only_puts_its_keys_and_reads_nothing(env: IntentServer) -> None:
    async with env.client("kvputter") as putter:
        kv = await putter.nc.jetstream(timeout=PATIENT).key_value("profiles")
        await kv.put("users.kvputter.email", b"putter@example.org")
        await refused(kv.get("users.kvputter.email"))
        assert await putter.violation(
            "Publish", "$JS.API.DIRECT.GET.KV_profiles.$KV.profiles.users.kvputter.email"
        )
    async with env.client(ADMIN) as admin:
        kv = await admin.nc.jetstream(timeout=PATIENT).key_value("profiles")
        assert (await kv.get("users.kvputter.email")).value == b"putter@example.org"


async def test_kv_whole_bucket_read_gets_and_lists_but_never_writes(env: IntentServer) -> None:
    async with env.client("settings") as client:
        js = client.nc.jetstream(timeout=PATIENT)
        kv = await js.key_value("settings")
        assert (await kv.get("theme")).value == b"dark"
        assert await _listed_keys(kv) == ["theme"]
        await refused(kv.put("theme", b"light"))
        assert await client.violation("Publish", "$KV.settings.theme")
        await refused(js.key_value("secrets"))
        assert await client.violation("Publish", "$JS.API.STREAM.INFO.KV_secrets")


async def test_object_store_read_and_write_of_one_bucket(env: IntentServer) -> None:
    async with env.client("objreader") as reader:
        js = reader.nc.jetstream(timeout=PATIENT)
        store = await js.object_store("files")
        assert (await store.get("report.txt")).data == b"quarterly numbers"
        await refused(store.put("forged.txt", b"x"))
        assert await reader.violation("Publish", "$O.files.C.", exact=False)
        await refused(js.object_store("vault"))
        assert await reader.violation("Publish", "$JS.API.STREAM.INFO.OBJ_vault")
    async with env.client("objwriter") as writer:
        store = await writer.nc.jetstream(timeout=PATIENT).object_store("files")
        await store.put("notes.txt", b"first")
        await store.put("notes.txt", b"second")  # replaces: purges the old chunks
        assert (await store.get("notes.txt")).data == b"second"
        await store.delete("notes.txt")
        with pytest.raises(nats.js.errors.ObjectNotFoundError):
            await store.get("notes.txt")


async def _discovered(nc: nats.NATS, name: str) -> bytes:
    """The service's answer to a discovery ping, once the server routes to it. Now and then
    (about 1 run in 10 on this machine) a caller's first request right after the service
    subscribed and flushed got "no responders" from nats-server 2.15.1, and the same request
    0.5 s later an answer; the cause is not known. So the caller waits, bounded, for the
    service's own subscriptions (its control subjects, made before its endpoints on the same
    connection) before it asserts anything."""
    for _ in range(50):  # bounded: about 5 s
        try:
            reply = await nc.request(f"$SRV.PING.{name}", b"", timeout=1.0)
        except nats.errors.NoRespondersError:
            await asyncio.sleep(0.1)
        else:
            return reply.data
    pytest.fail(f"service {name} was not discoverable within 5 s")


async def _echo(request: Request) -> None:
    await request.respond(b"echo:" + request.data)


async def test_service_call_and_serve_with_response_permission(env: IntentServer) -> None:
    async with env.client("server") as server, env.client("caller") as caller:
        service = await add_service(server.nc, name="echo", version="1.0.0")
        await service.add_endpoint(name="hello", subject="echo.hello", handler=_echo)
        pings = await _discovered(caller.nc, "echo")
        assert b'"name":"echo"' in pings.replace(b" ", b"")
        reply = await caller.nc.request("echo.hello", b"hi", timeout=PATIENT)
        assert reply.data == b"echo:hi"
        await caller.nc.subscribe("echo.>")  # a caller may not take the service's requests
        assert await caller.violation("Subscription", "echo.>")
        await server.nc.publish("echo.hello", b"x")  # a server may not call
        assert await server.violation("Publish", "echo.hello")
        await caller.nc.publish("billing.run", b"x")
        assert await caller.violation("Publish", "billing.run")
        await service.stop()


async def test_private_inbox_is_the_only_inbox(env: IntentServer) -> None:
    """Replies to one identity cannot be read by another, and the shared ``_INBOX`` is gone."""
    victim = inbox_prefix("static", "caller")
    async with env.client("server") as server, env.client("mallory") as mallory:
        service = await add_service(server.nc, name="echo", version="1.0.0")
        await service.add_endpoint(name="hello", subject="echo.hello", handler=_echo)
        await _discovered(mallory.nc, "echo")
        assert (
            await mallory.nc.request("echo.hello", b"mine", timeout=PATIENT)
        ).data == b"echo:mine"
        await mallory.nc.subscribe(f"{victim}.>")
        assert await mallory.violation("Subscription", f"{victim}.>")
        await mallory.nc.subscribe("_INBOX.>")
        assert await mallory.violation("Subscription", "_INBOX.>")
        async with env.client("caller", private=False) as shared:
            await refused(shared.nc.request("echo.hello", b"hi", timeout=PATIENT))
            assert await shared.violation("Subscription", "_INBOX.", exact=False)
        await service.stop()


def _watch_request(name: str, filter_subject: str, deliver: str) -> bytes:
    config = {
        "name": name,
        "filter_subject": filter_subject,
        "deliver_subject": deliver,
        "deliver_policy": "last_per_subject",
        "ack_policy": "none",
        "inactive_threshold": 5_000_000_000,
    }
    return json.dumps({"stream_name": "KV_profiles", "config": config}).encode()


async def test_kv_keys_filter_lets_a_watch_see_only_the_own_keys(env: IntentServer) -> None:
    """The filtered consumer create (server 2.9+, what nats.go uses for a KV watch) carries the
    filter in the subject: the grant limits it, and the server refuses a payload that asks
    for more than the subject says. (nats-py watches with the unfiltered form: refused.)"""
    own = "$KV.profiles.users.kvreader.>"
    async with env.client("kvreader") as reader:
        deliver = f"{inbox_prefix('static', 'kvreader')}.watch"
        watch = await reader.nc.subscribe(deliver)
        create = "$JS.API.CONSUMER.CREATE.KV_profiles"
        reply = await reader.nc.request(
            f"{create}.w1.{own}", _watch_request("w1", own, deliver), timeout=PATIENT
        )
        assert "error" not in json.loads(reply.data)
        message = await watch.next_msg(timeout=PATIENT)
        assert (message.subject, message.data) == (
            "$KV.profiles.users.kvreader.email",
            b"reader@example.org",
        )
        wider = await reader.nc.request(
            f"{create}.w2.{own}", _watch_request("w2", "$KV.profiles.>", deliver), timeout=PATIENT
        )
        assert "error" in json.loads(wider.data)  # payload filter differs from the subject's
        other = "$KV.profiles.users.kvwriter.>"
        await reader.nc.publish(f"{create}.w3.{other}", _watch_request("w3", other, deliver))
        assert await reader.violation("Publish", f"{create}.w3.{other}")
        kv = await reader.nc.jetstream(timeout=PATIENT).key_value("profiles")
        await refused(kv.keys())
        assert await reader.violation("Publish", create)


_MERGED_POLICY = """\
version: 1
defaults: {account: APP}
roles:
  replies:
    private_inbox: true
    publish: {allow: ["$SYS.REQ.USER.INFO"]}
  watch-all:
    subscribe: {allow: [">"]}
groups:
  callers: {roles: [replies]}
  watchers: {roles: [watch-all]}
"""


async def test_private_inbox_merged_with_a_wide_group_is_refused_on_the_wire(
    intent_nats: IntentServer, tmp_path: Path
) -> None:
    """An OIDC user whose token names a group with ``private_inbox`` and a group with
    subscribe ``>`` is refused at login (``conflicting_grants``), while the first group alone
    logs in on its private inbox: the merge never hands out every identity's replies."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "groups.yaml").write_text(_MERGED_POLICY, encoding="utf-8")
    key = SigningKey.rsa("merged")
    with jwks_server(key) as idp:
        issuer = {
            "issuer": ISSUER,
            "audience": [AUDIENCE],
            "jwks_url": idp.url,
            "group_claims": ["groups"],
            "allow_any_subject": "tests: one stand-in IdP",
        }
        settings = intent_nats.setup.settings(
            policies, backends=[{"type": "oidc", "issuers": [issuer]}]
        )
        app = App(settings)
        await app.start()
        try:
            alone = mint(key, claims("carol", groups=["callers"]))
            nc = await connect(
                intent_nats.server.url,
                token=alone,
                inbox_prefix=inbox_prefix("oidc", "carol"),
            )
            try:
                reply = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=PATIENT)
            finally:
                await nc.close()
            subscribe = json.loads(reply.data)["data"]["permissions"]["subscribe"]["allow"]
            assert subscribe == [f"{inbox_prefix('oidc', 'carol')}.>"]
            merged = mint(key, claims("carol", groups=["callers", "watchers"]))
            _, line = await raw_connect(intent_nats.setup.port, {"auth_token": merged})
            assert "Authorization Violation" in line
            assert counts.decisions(app.metrics)[Reason.CONFLICTING_GRANTS] == 1
        finally:
            await app.stop()


async def test_manage_subjects_reach_its_own_streams_consumers_only(env: IntentServer) -> None:
    """``manage`` on SCRATCH: durable and named consumer creates, consumer list and names,
    stream info work there; the same requests on ORDERS, and listing every stream, are
    refused on their exact subjects."""
    async with env.client("manager") as client:
        js = client.nc.jetstream(timeout=PATIENT)
        await js.add_stream(StreamConfig(name="SCRATCH", subjects=["scratch.>"]))
        try:
            await js.add_consumer("SCRATCH", ConsumerConfig(durable_name="d1"))
            named = ConsumerConfig(name="n1", durable_name="n1", filter_subject="scratch.a")
            await js.add_consumer("SCRATCH", named)
            assert (await js.stream_info("SCRATCH")).state.consumer_count == 2
            assert sorted(c.name for c in await js.consumers_info("SCRATCH")) == ["d1", "n1"]
            names = await client.nc.request("$JS.API.CONSUMER.NAMES.SCRATCH", b"", timeout=PATIENT)
            assert sorted(json.loads(names.data)["consumers"]) == ["d1", "n1"]
            api = "$JS.API"
            await refused(js.add_consumer("ORDERS", ConsumerConfig(durable_name="x")))
            assert await client.violation("Publish", f"{api}.CONSUMER.DURABLE.CREATE.ORDERS.x")
            stolen = ConsumerConfig(name="y", durable_name="y", filter_subject="orders.a")
            await refused(js.add_consumer("ORDERS", stolen))
            assert await client.violation("Publish", f"{api}.CONSUMER.CREATE.ORDERS.y.orders.a")
            await refused(js.stream_info("ORDERS"))
            assert await client.violation("Publish", f"{api}.STREAM.INFO.ORDERS")
            await refused(js.consumers_info("ORDERS"))
            assert await client.violation("Publish", f"{api}.CONSUMER.LIST.ORDERS")
            await client.nc.publish(f"{api}.CONSUMER.NAMES.ORDERS", b"")
            assert await client.violation("Publish", f"{api}.CONSUMER.NAMES.ORDERS")
            await refused(js.streams_info())
            assert await client.violation("Publish", f"{api}.STREAM.LIST")
        finally:
            await js.delete_stream("SCRATCH")


async def test_object_store_write_only_puts_and_never_reads(env: IntentServer) -> None:
    """Write without read: objects go in (and replace each other), reading one back is
    refused where nats-py looks up the chunks' stream, another bucket is refused."""
    async with env.client("objputter") as putter:
        js = putter.nc.jetstream(timeout=PATIENT)
        store = await js.object_store("files")
        await store.put("drop.txt", b"first")
        await store.put("drop.txt", b"second")  # replaces: purges the old chunks
        await refused(store.get("drop.txt"))
        assert await putter.violation("Publish", "$JS.API.STREAM.NAMES")
        await refused(js.object_store("vault"))
        assert await putter.violation("Publish", "$JS.API.STREAM.INFO.OBJ_vault")
    async with env.client(ADMIN) as admin:
        files = await admin.nc.jetstream(timeout=PATIENT).object_store("files")
        assert (await files.get("drop.txt")).data == b"second"
        await files.delete("drop.txt")


async def test_service_with_custom_subjects_uses_those_and_not_its_name(
    env: IntentServer,
) -> None:
    """``subjects: ["rpc.billing.*"]`` replaces the default ``billing`` / ``billing.>``: the
    caller reaches the endpoint there, not under the service's name or one token deeper,
    and the server may not take requests outside its subjects."""
    async with env.client("rpcserver") as server, env.client("rpccaller") as caller:
        service = await add_service(server.nc, name="billing", version="1.0.0")
        await service.add_endpoint(name="charge", subject="rpc.billing.charge", handler=_echo)
        pings = await _discovered(caller.nc, "billing")
        assert b'"name":"billing"' in pings.replace(b" ", b"")
        reply = await caller.nc.request("rpc.billing.charge", b"10", timeout=PATIENT)
        assert reply.data == b"echo:10"
        await caller.nc.publish("billing.charge", b"x")
        assert await caller.violation("Publish", "billing.charge")
        await caller.nc.publish("rpc.billing.charge.extra", b"x")
        assert await caller.violation("Publish", "rpc.billing.charge.extra")
        await server.nc.subscribe("rpc.>")
        assert await server.violation("Subscription", "rpc.>")
        await service.stop()


async def _listed_keys(kv: Any) -> list[str]:
    """``kv.keys()``, read again when nats-py's listing misses keys it was about to deliver
    (it can raise NoKeysError for a bucket that holds keys), bounded."""
    for _ in range(9):
        with contextlib.suppress(nats.js.errors.NoKeysError):
            listed: list[str] = await kv.keys()
            return listed
        await asyncio.sleep(0.1)
    last: list[str] = await kv.keys()
    return last
