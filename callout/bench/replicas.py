"""`callout bench --replicas N`: N `callout serve` processes in one queue group behind
nats-server with JetStream, measured with shared state (`state.enabled`) off and on.

One nats-server on 127.0.0.1 (free ports, JetStream in a temporary store directory, so the
buckets are R1: no replication between nodes is in the numbers), or with ``nodes=3`` a
cluster of three (R3 buckets; `callout.bench.cluster`). For each scenario and mode
the N replicas are started afresh (an empty decision cache each, the same settings but
``state``), a warm-up runs, then one window per concurrency; then the replicas are stopped.
The throttle limits are raised so no login is dropped for a limit: every failure is counted
(and, with shared state, written), none is refused early.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from pathlib import Path

from callout.bench.cluster import Nodes
from callout.bench.driver import Row, measure, metric
from callout.bench.replicareport import ReplicaRow
from callout.bench.scenarios import PEPPER, RAISED_THROTTLE, BenchIdentities, Scenario
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import free_port
from callout.devserver.service_process import ServiceProcess, write_settings
from callout.secretfiles import write_secret

MODES = {"off": False, "on": True}
ANSWERED = "callout_auth_requests_total"  # every request a replica answered or dropped
# Shared state's own account of a window: KV operations that failed or writes it dropped
# (either sends a replica to local state), and whether every replica is on shared state.
KV_TROUBLE = ("callout_shared_state_failures_total", "callout_shared_state_dropped_writes_total")
KV_UP = "callout_shared_state_up"
# Refused at admission with a signed `overloaded` deny: no decision was worked on. A refusal
# scenario counts them as refused, so the report says how many of its logins they were.
SHED = 'reason="overloaded"'
_WARMUP = 40  # logins per replica before the first window (caches, connections)


def unfit_for_replicas(scenario: Scenario) -> str | None:
    """Why ``scenario`` cannot run in replica mode (one server config for every scenario), or
    None: the floor is not the service, xkey needs its own server config, background load
    would be measured N times over."""
    if scenario.floor:
        return "the floor is a single responder, not the service"
    if scenario.xkey:
        return "xkey needs its own server configuration"
    if scenario.background is not None:
        return "background load is a single-replica measurement"
    return None


class ReplicaStack:
    """nats-server(s) with JetStream (one, or a cluster of ``nodes``), and N replicas started
    and stopped per scenario, replica n on node n modulo the nodes."""

    def __init__(
        self, directory: Path, identities: BenchIdentities, replicas: int, nodes: int = 1
    ) -> None:
        self.directory = directory
        self.identities = identities
        self.count = replicas
        self.servers = Nodes(directory / "servers", nodes)
        self.replicas: list[ServiceProcess] = []
        self.metrics_ports: list[int] = []
        self.last_answered: list[int] = []
        self._started = 0

    @property
    def port(self) -> int:
        return self.servers.ports[0]

    @property
    def ports(self) -> list[int]:
        """Where clients log in: every node in turn."""
        return self.servers.ports

    @property
    def setup(self) -> ConfigModeSetup:
        """The first node's keys and service user (every node has the same)."""
        return self.servers.nodes[0].setup

    @property
    def pids(self) -> dict[str, int]:
        return {f"replica-{n}": r.pid for n, r in enumerate(self.replicas, 1)} | self.servers.pids

    def start_server(self) -> None:
        self.servers.start()

    def start_replicas(self, scenario: Scenario, shared: bool) -> None:
        """N replicas of ``callout serve`` for ``scenario``, back when every one is ready."""
        self._started += 1
        run = self.directory / f"{self._started}-{scenario.name}-{'on' if shared else 'off'}"
        policies = run / "policies"
        policies.mkdir(parents=True)
        (policies / "bench.yaml").write_text(self.identities.policy_yaml("APP"))
        overrides: dict[str, object] = {**RAISED_THROTTLE, **scenario.settings}
        if shared:
            key, size = self._state_key(), self.servers.size
            overrides["state"] = {"enabled": True, "key_file": key, "replicas": size}
        if scenario.tokens:
            pepper = run / "pepper"
            write_secret(pepper, PEPPER.decode())
            overrides["backends"] = [{"type": "token", "pepper_file": pepper}, {"type": "static"}]
        self.metrics_ports = [free_port() for _ in range(self.count)]
        for number, port in enumerate(self.metrics_ports, 1):
            http = {"enabled": True, "host": "127.0.0.1", "port": port}
            node = self.servers.nodes[(number - 1) % self.servers.size].setup
            settings = node.settings(policies, **overrides, http=http)
            config = write_settings(settings, run / f"replica-{number}.yaml")
            replica = ServiceProcess(config, run / f"replica-{number}.log")
            self.replicas.append(replica)
            replica.start()
        for replica in self.replicas:
            replica.wait_for(timeout=60.0)

    def _state_key(self) -> Path:
        """The secret every replica keys its digests with: one file, the same for all."""
        key = self.directory / "state-key"
        if not key.exists():
            write_secret(key, secrets.token_hex(32))
        return key

    def answered(self) -> list[int]:
        """Requests each replica has answered so far (its /metrics)."""
        return [int(metric(port, ANSWERED)) for port in self.metrics_ports]

    def shed(self) -> int:
        """Requests refused as ``overloaded`` so far, summed over the replicas."""
        return int(sum(metric(port, ANSWERED, SHED) for port in self.metrics_ports))

    def kv_trouble(self) -> int:
        """Failed KV operations and dropped writes so far, summed over the replicas."""
        return int(sum(metric(port, name) for port in self.metrics_ports for name in KV_TROUBLE))

    def kv_up(self) -> bool:
        """Whether every replica is on shared state now."""
        return all(metric(port, KV_UP) == 1 for port in self.metrics_ports)

    def stop_replicas(self) -> None:
        """SIGTERM to every replica at once (they drain in parallel), then wait for each; what
        each had answered in all is kept in ``last_answered``."""
        if not self.replicas:
            return
        with contextlib.suppress(OSError, ValueError):  # a replica that never served /metrics
            self.last_answered = self.answered()
        running = [r.process for r in self.replicas if r.process and r.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + 15.0
        for process in running:  # one SIGTERM each: a second one would skip the drain
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.replicas = []

    def stop(self) -> None:
        self.stop_replicas()
        self.servers.stop()


async def run_replicas(
    stack: ReplicaStack,
    scenario: Scenario,
    shared: bool,
    *,
    concurrencies: list[int],
    count: int,
    duration: float,
) -> list[ReplicaRow]:
    """Every concurrency of ``scenario`` with the replicas in one mode (server already up)."""
    try:
        stack.start_replicas(scenario, shared)
        warmup = scenario.credentials(stack.identities)
        await measure(
            stack,
            scenario.name,
            warmup,
            concurrency=4,
            count=_WARMUP * stack.count,
            duration=10,
            expect_ok=scenario.expect_ok,
        )
        rows = []
        for concurrency in concurrencies:
            before, shed, trouble = stack.answered(), stack.shed(), stack.kv_trouble()
            row = await measure(
                stack,
                scenario.name,
                scenario.credentials(stack.identities),
                concurrency=concurrency,
                count=count,
                duration=duration,
                expect_ok=scenario.expect_ok,
            )
            answered = [now - was for now, was in zip(stack.answered(), before, strict=True)]
            window = ReplicaRow(_summed(row), shared, answered, stack.shed() - shed)
            window.nodes = stack.servers.size
            if shared:
                window.kv_failures = stack.kv_trouble() - trouble
                window.kv_up = stack.kv_up()
            rows.append(window)
        return rows
    finally:
        stack.stop_replicas()


def _summed(row: Row) -> Row:
    """The row with the replicas' CPU as one ``service`` figure (what N replicas cost) and the
    nodes' as one ``nats-server`` figure."""
    spent = {"service": 0.0, "nats-server": 0.0, "loadgen": 0.0}
    for name, seconds in row.cpu_seconds.items():
        spent["service" if name.startswith("replica-") else name.rstrip("-0123456789")] += seconds
    return Row(row.scenario, row.concurrency, row.result, spent)


async def run_modes(
    stack: ReplicaStack,
    scenarios: list[Scenario],
    modes: list[bool],
    *,
    concurrencies: list[int],
    count: int,
    duration: float,
) -> list[ReplicaRow]:
    """Each scenario in each mode, the modes interleaved per scenario (a drift of the machine
    hits both alike); nats-server and every replica stopped by PID on every exit path, Ctrl-C
    included."""
    rows: list[ReplicaRow] = []
    try:
        stack.start_server()
        for scenario in scenarios:
            for shared in modes:
                rows += await run_replicas(
                    stack,
                    scenario,
                    shared,
                    concurrencies=concurrencies,
                    count=count,
                    duration=duration,
                )
    finally:
        stack.stop()
    return rows
