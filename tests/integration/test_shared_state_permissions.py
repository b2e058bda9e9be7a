"""The shared state under exactly the permissions README "Running several replicas" lists
(`callout.state.permissions`), against a real nats-server with JetStream: two replicas see
each other's counts and revocations; without one of the subjects a replica stays on local
state (so the list is what the code needs, not a guess)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient

from callout.devserver.processes import NatsServer, free_port
from callout.settings import StateSettings
from callout.state.counters import SharedCounters
from callout.state.health import StateHealth
from callout.state.mirror import Record
from callout.state.permissions import state_permissions
from callout.state.revocations import SharedRevocations
from callout.state.store import SharedStore

pytestmark = pytest.mark.integration

SETTINGS = StateSettings(replicas=1, check_interval=0.2)
PASSWORD = "state-password"


def _user(name: str, permissions: dict[str, list[str]]) -> str:
    return json.dumps({"user": name, "password": PASSWORD, "permissions": permissions})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    full = state_permissions(SETTINGS)
    narrow = {**full, "publish": [s for s in full["publish"] if not s.startswith("$KV.")]}
    port = free_port()
    config = tmp_path / "nats-server.conf"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nserver_name: state_permissions\n"
        f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
        "accounts { STATE { jetstream: enabled, users: [\n"
        f"  {_user('state', full)},\n  {_user('narrow', narrow)}\n] }} }}\n",
        encoding="utf-8",
    )
    with NatsServer(config, port) as running:
        yield running


class _Replica:
    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.health = StateHealth()
        self.counters = SharedCounters(SETTINGS.throttle_bucket, window=60.0, health=self.health)
        self.revocations = SharedRevocations(SETTINGS.revocations_bucket, health=self.health)
        self.seen: dict[str, Record | None] = {}
        self.revocations.listener = self.seen.__setitem__
        self.store = SharedStore(SETTINGS, [self.counters, self.revocations], self.health)


@pytest.fixture
async def connect(server: NatsServer) -> AsyncIterator[Callable[[str], Any]]:
    replicas: list[_Replica] = []

    async def start(user: str) -> _Replica:
        nc = await nats.connect(server.url, user=user, password=PASSWORD)
        replica = _Replica(nc)
        replicas.append(replica)
        await replica.store.start(nc)
        return replica

    yield start
    for replica in replicas:
        await replica.store.stop()
        await replica.nc.close()


async def _until(condition: Callable[[], bool], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"not within {limit}s"
        await asyncio.sleep(0.01)


async def test_two_replicas_share_counts_and_revocations_with_the_documented_permissions(
    connect: Callable[[str], Any],
) -> None:
    first, second = await connect("state"), await connect("state")
    assert first.health.up
    assert second.health.up
    now = time.time()
    first.counters.changed("pair.ab", 2, 10.0, now)
    await _until(lambda: (second.counters.value("pair.ab") or 0) >= now + 20.0, 1.0)
    second.counters.changed("pair.ab", 1, 10.0, now)  # compare-and-set on top of the first
    await _until(lambda: (first.counters.value("pair.ab") or 0) >= now + 30.0, 1.0)
    first.revocations.put("user.YWxpY2U", {"kind": "user", "name": "alice", "until": 1})
    await _until(lambda: "user.YWxpY2U" in second.seen, 1.0)
    assert second.health.up


async def test_without_the_bucket_subjects_a_replica_stays_on_local_state(
    connect: Callable[[str], Any],
) -> None:
    await connect("state")  # creates the buckets
    narrow = await connect("narrow")
    narrow.counters.changed("pair.ab", 1, 10.0, time.time())
    await _until(lambda: not narrow.health.up, 3.0)
    assert narrow.health.detail().startswith("local (")
