"""A 3-node cluster with callout on every node and two service replicas: losing a replica or
a server under steady load costs at most the logins in flight at that moment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callout.bench.rawnats import Credential, login
from tests.faults.cluster import Cluster
from tests.integration.users import SENSOR, write_policy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NKEY = Credential(nkey=SENSOR)


@dataclass
class Load:
    """Back-to-back nkey logins on some nodes, recording (start time, ok) per attempt."""

    attempts: list[tuple[float, int, bool]] = field(default_factory=list)

    async def run(self, ports: list[int], per_node: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds

        async def worker(port: int) -> None:
            while time.monotonic() < deadline:
                started = time.monotonic()
                attempt = await login("127.0.0.1", port, NKEY, 5.0)
                self.attempts.append((started, port, attempt.ok))

        await asyncio.gather(*(worker(port) for port in ports for _ in range(per_node)))

    def failures(self, since: float = 0.0) -> int:
        return sum(1 for started, _, ok in self.attempts if started >= since and not ok)

    def successes(self, port: int, since: float) -> int:
        return sum(1 for started, p, ok in self.attempts if p == port and started >= since and ok)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster.start(tmp_path, write_policy(tmp_path / "policies", "APP", "OPS"))
    try:
        yield running
    finally:
        running.stop()


async def test_killing_a_replica_loses_at_most_the_logins_in_flight(cluster: Cluster) -> None:
    """kill -9 of one replica: the queue group moves to the other; only requests the dead one
    had taken can fail (bounded by the load's concurrency), and every node keeps serving."""
    doomed = cluster.add_replica(0, "replica-a")
    cluster.add_replica(1, "replica-b")
    ports = [node.port for node in cluster.nodes]
    load = Load()
    running = asyncio.create_task(load.run(ports, per_node=3, seconds=6.0))
    await asyncio.sleep(2.0)
    killed_at = time.monotonic()
    await asyncio.to_thread(doomed.kill)
    await running
    in_flight_bound = 3 * len(ports)
    assert load.failures() <= in_flight_bound
    assert load.failures(since=killed_at + 0.5) == 0
    for port in ports:
        assert load.successes(port, since=killed_at + 0.5) > 0


async def test_a_restarted_server_gets_its_replica_back(cluster: Cluster) -> None:
    """Stopping a node: logins keep working through the others; when it returns, its replica
    reconnects, re-subscribes and serves again (shown by it answering alone)."""
    first = cluster.add_replica(0, "replica-a")
    second = cluster.add_replica(1, "replica-b")
    survivors = [cluster.nodes[0].port, cluster.nodes[2].port]
    load = Load()
    running = asyncio.create_task(load.run(survivors, per_node=3, seconds=6.0))
    await asyncio.sleep(1.5)
    stopped_at = time.monotonic()
    log_mark = len(second.text())
    await asyncio.to_thread(cluster.nodes[1].server.stop)
    await asyncio.sleep(1.5)
    await asyncio.to_thread(cluster.nodes[1].server.start)
    await asyncio.to_thread(second.wait_for, "nats_reconnected", 15.0, log_mark)
    await running
    assert load.failures() <= 3 * len(survivors)
    assert load.failures(since=stopped_at + 0.5) == 0
    await asyncio.to_thread(cluster.wait_for_routes, 2, 15.0)

    await asyncio.to_thread(first.stop)
    alone = Load()
    await alone.run([node.port for node in cluster.nodes], per_node=1, seconds=1.5)
    assert alone.failures() == 0
    assert all(alone.successes(node.port, since=0) > 0 for node in cluster.nodes)
