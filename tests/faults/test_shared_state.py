"""Shared state on a real 3-node JetStream cluster (R3 buckets) with 3 service replicas:
the throttle holds across the replicas together, a revocation through one replica is enforced
by the others within 1 s, a killed node changes nothing, and with KV gone each replica keeps
working on local state and comes back to the shared state by itself."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from callout.credentials.passwords import hash_password
from callout.decision import BackendName, DropReason, Identity, Reason
from callout.secretfiles import write_secret
from callout.service.app import App
from callout.sessions.denylist import DenyEntry
from tests.counts import decisions, drops
from tests.faults.cluster import Cluster
from tests.integration.httpget import http_get
from tests.integration.rawclient import raw_connect
from tests.integration.users import PASSWORDS, write_policy
from tests.reconnects import LEAKED_RECONNECT_SOCKET, collect_leaked_sockets

# nodes are stopped under the replicas' clients: see tests/reconnects.py
pytestmark = [pytest.mark.integration, pytest.mark.slow, LEAKED_RECONNECT_SOCKET]

LIMIT = 4  # throttle.max_failures_per_principal
SYSTEM_USER = "callout-sys"


STORM = [(f"storm{number}", f"storm-password-{number}") for number in range(24)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    policies = write_policy(tmp_path / "policies", "APP", "OPS")
    with (policies / "policy.yaml").open("a") as policy:  # password users for a storm
        for name, password in STORM:
            policy.write(
                f'  {name}:\n    password: "{hash_password(password)}"\n    roles: [app]\n'
            )
    running = Cluster.start(tmp_path, policies, jetstream=True, system_user=SYSTEM_USER)
    try:
        yield running
    finally:
        running.stop()


def _settings(cluster: Cluster, name: str, key_file: Path, **overrides: Any) -> Any:
    first = cluster.nodes[0].setup
    values: dict[str, Any] = {
        "nats": {
            "servers": [f"nats://127.0.0.1:{node.port}" for node in cluster.nodes],
            "user": "auth",
            "password_file": first.password_file,
            "reconnect_wait": 0.25,
        },
        "throttle": {"max_failures_per_principal": LIMIT, "max_failures_per_ip": 1000},
        # a generous budget on a machine shared with other test runs (the default is 200 ms)
        "state": {
            "enabled": True,
            "key_file": key_file,
            "check_interval": 0.25,
            "confirm_budget": 1.0,
        },
        "http": {"enabled": True, "host": "127.0.0.1", "port": 0},
        "sessions": {
            "enabled": True,
            "system": {"user": SYSTEM_USER, "password_file": first.system_password_file},
            "deny_list_file": cluster.directory / f"{name}-deny-list.json",
        },
    }
    values.update(overrides)
    return first.settings(cluster.policy_dir, **values)


@pytest.fixture
async def replicas(cluster: Cluster) -> AsyncIterator[list[App]]:
    key_file = cluster.directory / "state-key"
    write_secret(key_file, secrets.token_hex(32))
    apps = [App(_settings(cluster, f"r{index}", key_file)) for index in range(3)]
    started: list[App] = []
    try:
        for app in apps:
            await app.start()
            started.append(app)
        # a cluster that has just formed may elect its JetStream leader after the first start
        await _until(lambda: all(_shared(app) for app in apps), 15.0)
        yield apps
    finally:
        for app in started:
            await app.stop()
        collect_leaked_sockets()


def _connected_port(app: App) -> int:
    assert app.nc is not None
    assert app.nc.connected_url is not None
    port = app.nc.connected_url.port
    assert port is not None
    return port


def _shared(app: App) -> bool:
    assert app.service.shared is not None
    return app.service.shared.health.up


async def _until(condition: Any, limit: float) -> float:
    """Seconds until ``condition()`` holds (at most ``limit``)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > limit:
            raise TimeoutError(f"not within {limit}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def _guess(port: int, user: str = "alice") -> None:
    """One wrong password: refused, whether answered or dropped (the replicas' metrics say
    which)."""
    _, line = await raw_connect(port, {"user": user, "pass": "guess"})
    assert "Authorization Violation" in line


async def _caught_up(apps: list[App], limit: float) -> None:
    """Wait until every replica is on shared state with its watches at the buckets' ends."""
    deadline = time.monotonic() + limit
    while True:
        stores = [app.service.shared.store for app in apps if app.service.shared is not None]
        if all([await store.caught_up() for store in stores]):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not caught up within {limit}s")
        await asyncio.sleep(0.05)


def _answered(apps: list[App], reason: Reason) -> list[int]:
    return [decisions(app.metrics)[reason] for app in apps]


def _within_limit(apps: list[App], reason: Reason) -> list[int]:
    """Per replica, the guesses within the limit: decided as ``reason``, or refused as
    unavailable when waiting for the shared count left the backend no time before the
    request's exp (a loaded machine; fail closed, and counted as a failure all the same)."""
    unfinished = _answered(apps, Reason.BACKEND_UNAVAILABLE)
    decided = _answered(apps, reason)
    return [count + late for count, late in zip(decided, unfinished, strict=True)]


async def test_guesses_spread_over_three_replicas_meet_the_global_limit(
    cluster: Cluster, replicas: list[App]
) -> None:
    """The queue group spreads an attacker's guesses over the replicas; with shared counters
    they get the limit once, not once per replica (3x)."""
    assert all(_shared(app) for app in replicas)
    # through the nodes the replicas are connected to (each picks one at random): a node hands
    # a request to its own queue subscribers first, so guesses through two nodes reach two
    # replicas; through a node with none they could all reach the same one
    ports = sorted({_connected_port(app) for app in replicas})
    for attempt in range(LIMIT + 2):
        await _guess(ports[attempt % len(ports)])
    per_replica = _within_limit(replicas, Reason.BAD_CREDENTIALS)
    assert sum(per_replica) == LIMIT
    assert sum(drops(app.metrics)[DropReason.THROTTLED] for app in replicas) == 2
    assert sum(1 for count in per_replica if count) >= 2  # the guesses were spread
    right = {"user": "alice", "pass": PASSWORDS["alice"]}
    _, line = await raw_connect(ports[0], right, source="127.0.0.2")
    assert line == "PONG"  # the limit is per (principal, address): alice elsewhere logs in


async def test_guesses_started_at_once_on_three_replicas_meet_the_global_limit(
    cluster: Cluster, replicas: list[App]
) -> None:
    """Three times the limit, all at once, spread over the nodes: each replica counts at the
    start and waits for its count to be written with the others' (compare-and-set), so the
    guesses past the limit are dropped although no replica alone has seen the limit."""
    ports = [node.port for node in cluster.nodes]
    await asyncio.gather(*(_guess(ports[i % 3], "dave") for i in range(3 * LIMIT)))
    # counted by the replicas, not by timing: past the limit, exactly 2 x LIMIT are dropped
    assert sum(drops(app.metrics)[DropReason.THROTTLED] for app in replicas) == 2 * LIMIT
    assert sum(_within_limit(replicas, Reason.UNKNOWN_USER)) == LIMIT


async def test_a_revocation_through_one_replica_is_enforced_by_the_others_within_a_second(
    cluster: Cluster, replicas: list[App]
) -> None:
    """`callout sessions revoke` reaches the replicas that answer it; the shared deny list
    brings it to the others (restarted, partitioned, or added later) within the watch's delay."""
    first, *others = replicas
    assert first.sessions is not None
    alice = Identity(principal="alice", backend=BackendName.STATIC)
    entry = DenyEntry("user", "alice", int(time.time()) + 3600, "left")
    first.sessions.tracker.deny_list.add(entry, time.time())  # what the revoke endpoint does

    def everywhere() -> bool:
        return all(
            app.sessions is not None
            and app.sessions.tracker.deny_list.refuses(alice, time.time()) is not None
            for app in others
        )

    assert await _until(everywhere, 1.0) < 1.0
    for app in replicas[:2]:
        await app.stop()  # only the third replica answers now
    replicas[:] = replicas[2:]
    _, line = await raw_connect(
        cluster.nodes[0].port, {"user": "alice", "pass": PASSWORDS["alice"]}
    )
    assert "Authorization Violation" in line
    assert decisions(replicas[0].metrics)[Reason.EXPLICIT_DENY] == 1


async def _leader(app: App, bucket: str) -> str:
    """The server name of the node leading ``bucket``'s stream."""
    assert app.nc is not None
    info = await app.nc.jetstream().stream_info(f"KV_{bucket}")
    assert info.cluster is not None
    assert info.cluster.leader is not None
    return info.cluster.leader


async def test_killing_the_node_that_leads_the_buckets_keeps_the_state_shared(
    cluster: Cluster, replicas: list[App]
) -> None:
    """R3 buckets survive one node: after the leader is killed, the replicas are on shared
    state again within seconds, and revocations and counts still reach every replica."""
    leader = await _leader(replicas[0], replicas[0].settings.state.throttle_bucket)
    victim = next(node for node in cluster.nodes if node.setup.server_name == leader)
    await asyncio.to_thread(victim.server.stop)
    survivors = [node.port for node in cluster.nodes if node is not victim]
    await _until(lambda: all(app.nc and app.nc.is_connected for app in replicas), 15.0)
    await _caught_up(replicas, 15.0)
    first, *others = replicas
    assert first.sessions is not None
    entry = DenyEntry("user", "alice", int(time.time()) + 3600)
    first.sessions.tracker.deny_list.add(entry, time.time())
    alice = Identity(principal="alice", backend=BackendName.STATIC)
    await _until(
        lambda: all(
            app.sessions is not None
            and app.sessions.tracker.deny_list.refuses(alice, time.time()) is not None
            for app in others
        ),
        1.0,
    )
    for attempt in range(LIMIT + 1):
        await _guess(survivors[attempt % 2], "carol")
    assert sum(_within_limit(replicas, Reason.UNKNOWN_USER)) == LIMIT
    assert sum(drops(app.metrics)[DropReason.THROTTLED] for app in replicas) == 1


async def test_without_kv_logins_work_on_local_state_and_come_back_to_shared_state(
    cluster: Cluster, replicas: list[App]
) -> None:
    """Two of three nodes gone: JetStream has no quorum, so every replica says it is on local
    state (gauge, readiness detail), logins keep working without waiting for KV, the local
    throttle still refuses guessers (fail closed), and once the nodes return the replicas
    are back on shared state by themselves."""
    doomed = cluster.nodes[1:]
    for node in doomed:
        await asyncio.to_thread(node.server.stop)
    await _until(lambda: not any(_shared(app) for app in replicas), 10.0)
    # a replica whose node was stopped is not ready until it has reconnected to the survivor
    await _until(lambda: all(app.nc and app.nc.is_connected for app in replicas), 10.0)
    for app in replicas:
        assert app.http is not None
        status, body = await http_get(app.http.port, "/readyz")
        assert status == 200  # logins still work: ready, and saying on what
        assert json.loads(body)["shared_state"].startswith("local (")
        gauge = app.metrics.registry.get_sample_value("callout_shared_state_up")
        assert gauge == 0
    port = cluster.nodes[0].port
    started = time.monotonic()
    _, line = await raw_connect(port, {"user": "alice", "pass": PASSWORDS["alice"]})
    assert line == "PONG"
    assert time.monotonic() - started < 1.0  # well under the 2 s auth timeout: no KV wait
    # each replica's own limit still holds: at most LIMIT answered guesses per replica
    # (the queue group picks the replica: after 3 x LIMIT answered guesses every one is full)
    for _ in range(3 * LIMIT + 1):
        await _guess(port, "carol")
    assert sum(_answered(replicas, Reason.UNKNOWN_USER)) <= 3 * LIMIT
    assert sum(drops(app.metrics)[DropReason.THROTTLED] for app in replicas) >= 1
    for node in doomed:
        await asyncio.to_thread(node.server.start)
    await _until(lambda: all(_shared(app) for app in replicas), 30.0)
    assert replicas[0].http is not None
    _, body = await http_get(replicas[0].http.port, "/readyz")
    assert json.loads(body)["shared_state"] == "shared"


def _lookups(app: App, result: str) -> float:
    found = app.metrics.registry.get_sample_value(
        "callout_cache_lookups_total", {"cache": "decision", "result": result}
    )
    return found or 0.0


async def _storm(port: int) -> list[str]:
    logins = [raw_connect(port, {"user": name, "pass": password}) for name, password in STORM]
    return [line for _, line in await asyncio.gather(*logins)]


async def test_a_restarted_replica_serves_a_reconnect_storm_from_the_shared_cache(
    cluster: Cluster, replicas: list[App]
) -> None:
    """Every client verified once by any replica is in the shared decision cache: a replica
    started afterwards (empty memory) answers all of them again without one KDF verification
    (no cache miss), and the ones it was not given are verified as usual."""
    port = cluster.nodes[0].port
    for name, password in STORM:  # one by one: 24 fresh KDFs at once would be refused
        _, line = await raw_connect(port, {"user": name, "pass": password})
        assert line == "PONG"
    assert sum(_lookups(app, "miss") for app in replicas) == len(STORM)
    key_file = cluster.directory / "state-key"
    fresh = App(_settings(cluster, "fresh", key_file))
    await fresh.start()
    try:
        await _caught_up([fresh], 15.0)
        for app in replicas:
            await app.stop()  # only the fresh replica answers now
        assert await _storm(port) == ["PONG"] * len(STORM)
        assert _lookups(fresh, "miss") == 0  # no KDF verification
        assert _lookups(fresh, "hit") == len(STORM)
        _, line = await raw_connect(port, {"user": "alice", "pass": PASSWORDS["alice"]})
        assert line == "PONG"
        assert _lookups(fresh, "miss") == 1  # alice was never cached: verified here
    finally:
        await fresh.stop()


def _holding(apps: list[App], principal: str) -> list[App]:
    """The replicas whose own registry holds a session of ``principal``."""
    return [
        app
        for app in apps
        if app.sessions is not None and app.sessions.tracker.registry.select(principal=principal)
    ]


async def _ask(nc: Any, verb: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await nc.request(f"callout.sessions.{verb}", json.dumps(body).encode(), timeout=5)
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


async def test_a_session_admitted_through_one_replica_is_listed_and_kicked_through_another(
    cluster: Cluster, replicas: list[App]
) -> None:
    """The session registry is shared: after the replica that admitted a client stops, the
    sessions API of the others lists that session and kicks it (the server disconnects the
    client), and the entry leaves the bucket."""
    node = cluster.nodes[0]
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    alice = await nats.connect(
        f"nats://127.0.0.1:{node.port}",
        user="alice",
        password=PASSWORDS["alice"],
        allow_reconnect=False,
        closed_cb=on_closed,
    )
    operator = await nats.connect(
        f"nats://127.0.0.1:{node.port}",
        user="auth",
        password=node.setup.password_file.read_text().strip(),
    )
    try:
        await _until(lambda: len(_holding(replicas, "alice")) == 1, 5.0)
        (admitting,) = _holding(replicas, "alice")
        await _caught_up(replicas, 5.0)
        await admitting.stop()
        replicas.remove(admitting)
        assert _holding(replicas, "alice") == []  # known to the others only through KV

        listed = await _ask(operator, "list", {"user": "alice"})
        assert [(s["principal"], s["account"]) for s in listed["sessions"]] == [("alice", "APP")]
        assert listed["sessions"][0]["client_id"] == alice.client_id

        kicked = await _ask(operator, "kick", {"user": "alice"})
        assert kicked["kicked"] == 1
        await asyncio.wait_for(closed.wait(), 5.0)  # the server ended the connection
        await _caught_up(replicas, 5.0)
        assert (await _ask(operator, "list", {"user": "alice"}))["sessions"] == []
    finally:
        await operator.close()
        await alice.close()
