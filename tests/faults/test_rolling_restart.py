"""A rolling restart under load drops nothing: two real `callout serve` replicas in one queue
group, restarted one at a time with SIGTERM while 16 clients log in without pause.

A stopping replica drains its subscription: the server routes new requests to the other
replica, and every request already routed to the stopping one is answered there. So no
login fails and every request has exactly one audit event (one ``auth_decision`` line, found
by its per-connection ``request_id``, across all replicas' logs).

CI runs 2 replicas x 4 restarts; the full run of the issue (20 restarts, with a summary line)
is ``CALLOUT_ROLLING_RESTARTS=20 .venv/bin/pytest -q -s -p no:cacheprovider
tests/faults/test_rolling_restart.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from callout.devserver.service_process import ServiceProcess, write_settings
from tests.integration.environments import Environment
from tests.integration.users import LOAD_USER, SENSOR

CLIENTS = 16
RESTARTS = int(os.environ.get("CALLOUT_ROLLING_RESTARTS", "4"))

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(60 + 20 * RESTARTS)]


class Replicas:
    """Service replicas of one deployment; every one ever started is stopped by PID."""

    def __init__(self, deployment: Environment, directory: Path) -> None:
        self.deployment = deployment
        self.directory = directory
        self.started: list[ServiceProcess] = []

    def start(self) -> ServiceProcess:
        index = len(self.started)
        settings = self.deployment.settings(service={"drain_timeout": "5s"})
        config = write_settings(settings, self.directory / f"replica-{index}.yaml")
        replica = ServiceProcess(config, self.directory / f"replica-{index}.log")
        self.started.append(replica)
        replica.start()
        replica.wait_for("service_ready", 30.0)
        return replica

    def audit(self) -> tuple[Counter[str], Counter[str]]:
        """Over every replica's log: audit events per request_id, and per outcome."""
        ids: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        for replica in self.started:
            for line in replica.text().splitlines():
                if '"auth_decision"' not in line:
                    continue
                event = json.loads(line)
                ids[event["request_id"]] += 1
                outcomes[f"{event['decision']}/{event.get('reason', '')}"] += 1
        return ids, outcomes

    def stop_all(self) -> None:
        for replica in self.started:
            replica.stop()


@pytest.fixture
def replicas(accounts: Environment, tmp_path: Path) -> Iterator[Replicas]:
    running = Replicas(accounts, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


class Load:
    """Clients that log in and out without pause; nkey and password logins alternate."""

    def __init__(self, deployment: Environment) -> None:
        self.deployment = deployment
        self.logins = 0
        self.failures: list[str] = []
        self.running = True
        self.last_sigterm = 0.0

    async def client(self, index: int) -> None:
        while self.running:
            self.logins += 1
            try:
                if index % 2:
                    user, password = LOAD_USER
                    nc = await self.deployment.connect(user=user, password=password)
                else:
                    nc = await self.deployment.connect(nkeys_seed_str=SENSOR.seed)
                await nc.close()
            except Exception as error:  # noqa: BLE001 - every failed login is counted
                since = time.monotonic() - self.last_sigterm
                self.failures.append(f"{error} ({since:.2f}s after the last SIGTERM)")


async def _sigterm(replica: ServiceProcess) -> int:
    assert replica.process is not None
    replica.process.send_signal(signal.SIGTERM)
    return await asyncio.to_thread(replica.process.wait, 30)


async def test_a_rolling_restart_under_load_loses_no_login_and_audits_each_once(
    accounts: Environment, replicas: Replicas
) -> None:
    """SIGTERM one replica, start its successor, wait until it is ready, then the other one."""
    live = [await asyncio.to_thread(replicas.start) for _ in range(2)]
    load = Load(accounts)
    clients = [asyncio.create_task(load.client(index)) for index in range(CLIENTS)]
    codes: list[int] = []
    try:
        await asyncio.sleep(1.0)
        for restart in range(RESTARTS):
            slot = restart % 2
            load.last_sigterm = time.monotonic()
            codes.append(await _sigterm(live[slot]))
            live[slot] = await asyncio.to_thread(replicas.start)
            await asyncio.sleep(0.5)
    finally:
        load.running = False
        await asyncio.gather(*clients)
    codes += [await _sigterm(replica) for replica in live]
    ids, outcomes = replicas.audit()
    summary = (
        f"rolling restart: 2 replicas, {RESTARTS} restarts, {CLIENTS} clients:"
        f" {load.logins} logins, {len(load.failures)} failed {load.failures[:4]},"
        f" audit outcomes {dict(outcomes)}, {len(ids)} request ids,"
        f" {sum(1 for n in ids.values() if n > 1)} audited more than once"
    )
    assert codes == [0] * (RESTARTS + 2), summary
    assert load.failures == [], summary
    assert set(outcomes) == {"allow/allowed"}, summary
    assert set(ids.values()) == {1}, summary
    assert ids.total() == load.logins, summary
    for replica in replicas.started:
        assert "service_stopped" in replica.text()
    sys.stdout.write(f"\n{summary}\n")
