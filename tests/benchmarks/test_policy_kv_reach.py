"""From a policy push to every replica running it: 3 JetStream nodes (R3 bucket), 3 replicas
(pytest-benchmark, one round of `PUSHES` pushes; the numbers are reported in ``extra_info``,
never asserted). Each push is a put through nats-py (the CLI's process start is not counted);
the time is from the put's ack to the last replica's ``/readyz`` showing the revision (all
three polled every 20 ms). Re-run on a quiet machine:

    .venv/bin/pytest tests/benchmarks/test_policy_kv_reach.py -q -p no:cacheprovider \
        --benchmark-json=policy-kv-reach.json
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest

from callout.policy.bundle import make_bundle
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.policystore import open_bucket, put_bundle
from callout.settings import PolicyKvSettings
from tests.faults.policykv import KV, Deployment, policy_dir, started_deployment

pytestmark = pytest.mark.benchmark(group="policy-kv", warmup=False)

PUSHES = 20


async def _reach_times(deployment: Deployment, tmp_path: Path) -> list[float]:
    node = deployment.cluster.nodes[0]
    url = f"nats://127.0.0.1:{node.port}"
    nc = await nats.connect(url, user="auth", password=node.setup.auth_password)
    times = []
    try:
        settings = PolicyKvSettings.model_validate(KV)
        kv = await open_bucket(nc.jetstream(), settings, create=True)
        for push in range(PUSHES):
            keys = [KeyPair.generate(KeyRole.USER) for _ in range(push % 3 + 1)]
            directory = policy_dir(tmp_path / f"p{push}", *keys)
            files = {p.name: p.read_bytes() for p in directory.iterdir()}
            bundle = make_bundle(files, pushed_by="bench", pushed_at=datetime.now(UTC))
            revision = await put_bundle(kv, bundle)
            stored = time.perf_counter()
            await deployment.wait_for_revision(revision, 30.0)
            times.append(time.perf_counter() - stored)
    finally:
        await nc.close()
    return times


def test_push_to_every_replica_running_it(benchmark: Any, tmp_path: Path) -> None:
    """Seconds from a stored push to all three replicas running it (median and maximum)."""
    unused = policy_dir(tmp_path / "unused", KeyPair.generate(KeyRole.USER))
    with started_deployment(tmp_path, unused) as deployment:
        rounds: list[list[float]] = []

        def once() -> None:
            rounds.append(asyncio.run(_reach_times(deployment, tmp_path)))

        benchmark.pedantic(once, rounds=1, iterations=1)
    times = rounds[0][1:]  # the first push creates the bucket: replicas find it on a retry
    benchmark.extra_info["pushes"] = len(times)
    benchmark.extra_info["seconds_median"] = statistics.median(times)
    benchmark.extra_info["seconds_max"] = max(times)
    assert len(times) == PUSHES - 1
