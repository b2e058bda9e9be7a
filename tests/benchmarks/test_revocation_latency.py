"""End to end: from a reload that removes a user to the last of its connections closed, with
a real nats-server (pytest-benchmark, one round per run; the number is reported, never
asserted). The benchmark's own time includes connecting the clients; the reload-to-closed
figure is ``extra_info.seconds_reload_to_all_closed``. Re-run on a quiet machine:

    .venv/bin/pytest tests/benchmarks/test_revocation_latency.py -q -p no:cacheprovider \
        --benchmark-json=revocation.json
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nats
import pytest

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.service.app import App
from tests.integration.users import PASSWORDS, write_policy

pytestmark = pytest.mark.benchmark(group="revocation", warmup=False)

CLIENTS = 20


async def _revoke_once(setup: ConfigModeSetup, policies: Path) -> float:
    sessions = {
        "enabled": True,
        "system": {"user": "sys", "password_file": setup.system_password_file},
    }
    app = App(setup.settings(policies, sessions=sessions, reload={"watch": False}))
    await app.start()
    clients: list[Any] = []
    try:
        closed = asyncio.Event()

        async def on_closed() -> None:
            if all(c.is_closed for c in clients):
                closed.set()

        url = f"nats://127.0.0.1:{setup.port}"
        options = {"user": "alice", "password": PASSWORDS["alice"], "allow_reconnect": False}
        clients.extend(
            [await nats.connect(url, closed_cb=on_closed, **options) for _ in range(CLIENTS)]
        )
        assert app.sessions is not None
        registry = app.sessions.tracker.registry
        for _ in range(200):
            if sum(s.connected for s in registry.select(principal="alice")) == CLIENTS:
                break
            await asyncio.sleep(0.05)
        path = policies / "policy.yaml"
        path.write_text(path.read_text().replace("  alice:\n", "  alice-gone:\n", 1))
        started = time.perf_counter()
        assert app.reload()
        await asyncio.wait_for(closed.wait(), timeout=30)
        return time.perf_counter() - started
    finally:
        for client in clients:
            await client.close()
        await app.stop()


def test_reload_to_all_connections_of_a_removed_user_closed(benchmark: Any, tmp_path: Path) -> None:
    """20 connections of one user, removed from the policy: how long until all are closed
    (the default kick rate, 20/s, sets most of it)."""
    setup = ConfigModeSetup(
        tmp_path / "keys", free_port(), target_accounts=("APP", "OPS"), system_user="sys"
    ).write()
    with NatsServer(setup.config_file, setup.port):
        rounds: list[float] = []

        def once() -> None:
            policies = write_policy(tmp_path / f"policies{len(rounds)}", "APP", "OPS")
            rounds.append(asyncio.run(_revoke_once(setup, policies)))

        benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info["seconds_reload_to_all_closed"] = rounds[0]
    assert rounds[0] > 0
