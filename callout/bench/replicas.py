"""`callout bench --replicas N`: N `callout serve` processes in one queue group behind one
nats-server with JetStream, measured with shared state (`state.enabled`) off and on.

One nats-server on 127.0.0.1 (a free port, JetStream in a temporary store directory, so the
buckets are R1: no replication between nodes is in the numbers). For each scenario and mode
the N replicas are started afresh (an empty decision cache each, the same settings but
``state``), a warm-up runs, then one window per concurrency; then the replicas are stopped.
The throttle limits are raised so no login is dropped for a limit: every failure is counted
(and, with shared state, written), none is refused early.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from callout.bench.driver import Row, measure, metric
from callout.bench.scenarios import PEPPER, RAISED_THROTTLE, BenchIdentities, Scenario
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
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


@dataclass
class ReplicaRow:
    """One measured window of the replicas in one mode: the window's row (CPU ``service`` is
    the replicas' sum) and how many requests each replica answered in it."""

    row: Row
    shared_state: bool
    answered: list[int] = field(default_factory=list)
    shed: int = 0  # answered with `overloaded` at admission (no decision worked on)
    kv_failures: int = 0  # with shared state: failed KV operations and dropped writes
    kv_up: bool = True  # with shared state: every replica on it at the window's end

    @property
    def mode(self) -> str:
        return "on" if self.shared_state else "off"

    def as_dict(self) -> dict[str, object]:
        return {
            **self.row.as_dict(),
            "replicas": len(self.answered),
            "shared_state": self.mode,
            "answered_by_replica": self.answered,
            "shed_overloaded": self.shed,
            "kv_failures": self.kv_failures if self.shared_state else None,
            "kv_up": self.kv_up if self.shared_state else None,
        }


class ReplicaStack:
    """One nats-server with JetStream, and N replicas started and stopped per scenario."""

    def __init__(self, directory: Path, identities: BenchIdentities, replicas: int) -> None:
        self.directory = directory
        self.identities = identities
        self.count = replicas
        self.port = free_port()
        self.setup = ConfigModeSetup(directory / "server", self.port, jetstream=True)
        self.server: NatsServer | None = None
        self.replicas: list[ServiceProcess] = []
        self.metrics_ports: list[int] = []
        self.last_answered: list[int] = []
        self._started = 0

    @property
    def pids(self) -> dict[str, int]:
        pids = {f"replica-{n}": r.pid for n, r in enumerate(self.replicas, 1)}
        if self.server is not None and self.server.process is not None:
            pids["nats-server"] = self.server.process.pid
        return pids

    def start_server(self) -> None:
        self.setup.write()
        self.server = NatsServer(self.setup.config_file, self.port)
        self.server.start()

    def start_replicas(self, scenario: Scenario, shared: bool) -> None:
        """N replicas of ``callout serve`` for ``scenario``, back when every one is ready."""
        self._started += 1
        run = self.directory / f"{self._started}-{scenario.name}-{'on' if shared else 'off'}"
        policies = run / "policies"
        policies.mkdir(parents=True)
        (policies / "bench.yaml").write_text(self.identities.policy_yaml("APP"))
        overrides: dict[str, object] = {**RAISED_THROTTLE, **scenario.settings}
        if shared:
            overrides["state"] = {"enabled": True, "key_file": self._state_key(), "replicas": 1}
        if scenario.tokens:
            pepper = run / "pepper"
            write_secret(pepper, PEPPER.decode())
            overrides["backends"] = [{"type": "token", "pepper_file": pepper}, {"type": "static"}]
        self.metrics_ports = [free_port() for _ in range(self.count)]
        for number, port in enumerate(self.metrics_ports, 1):
            http = {"enabled": True, "host": "127.0.0.1", "port": port}
            settings = self.setup.settings(policies, **overrides, http=http)
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
        if self.server is not None:
            self.server.stop()


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
            if shared:
                window.kv_failures = stack.kv_trouble() - trouble
                window.kv_up = stack.kv_up()
            rows.append(window)
        return rows
    finally:
        stack.stop_replicas()


def _summed(row: Row) -> Row:
    """The row with the replicas' CPU as one ``service`` figure (what N replicas cost)."""
    replicas = sum(v for k, v in row.cpu_seconds.items() if k.startswith("replica-"))
    others = {k: v for k, v in row.cpu_seconds.items() if not k.startswith("replica-")}
    return Row(row.scenario, row.concurrency, row.result, {**others, "service": replicas})


def added_latency(rows: list[ReplicaRow]) -> list[tuple[str, int, float, float]]:
    """(scenario, concurrency, p50 on - off, p99 on - off) in milliseconds, for every window
    measured in both modes."""
    off = {(r.row.scenario, r.row.concurrency): r.row for r in rows if not r.shared_state}
    out = []
    for r in rows:
        base = off.get((r.row.scenario, r.row.concurrency))
        if not r.shared_state or base is None:
            continue
        p50, p99 = (
            1000 * (r.row.result.percentile(q) - base.result.percentile(q)) for q in (0.5, 0.99)
        )
        out.append((r.row.scenario, r.row.concurrency, p50, p99))
    return out


def format_replicas(rows: list[ReplicaRow], replicas: int) -> str:
    """The report: what ran, one line per window, then the added latency of shared state."""
    lines = [
        f"{replicas} replica(s) of `callout serve` in one queue group; one nats-server with"
        " JetStream on 127.0.0.1, R1 buckets (state.replicas: 1): no replication between nodes"
        f" is measured; service CPU is the replicas' sum; {os.cpu_count()} CPU(s), shared by"
        " every process here.",
        "",
        "| scenario | shared state | conc | auths/s | p50 ms | p99 ms | failed "
        "| CPU ms/auth service | server | loadgen | answered per replica | shed | KV failures |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        d = r.row.as_dict()
        cpu = {name: r.row.cpu_ms_per_auth(name) for name in ("service", "nats-server", "loadgen")}
        lines.append(
            f"| {d['scenario']} | {r.mode} | {d['concurrency']} | {d['auths_per_s']} "
            f"| {d['p50_ms']} | {d['p99_ms']} | {d['failed']} | {_ms(cpu['service'])} "
            f"| {_ms(cpu['nats-server'])} | {_ms(cpu['loadgen'])} "
            f"| {' / '.join(map(str, r.answered))} | {r.shed} | {_kv(r)} |"
        )
    lines.append(
        "\nshed: logins answered `overloaded` at admission (no decision worked on); a refusal"
        " scenario counts them among its refusals, so its rates and latencies mix both."
    )
    added = added_latency(rows)
    if added:
        lines += [
            "",
            "| scenario | conc | added p50 ms (on - off) | added p99 ms (on - off) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {conc} | {p50:+.2f} | {p99:+.2f} |" for name, conc, p50, p99 in added
        ]
    return "\n".join(lines)


def _kv(row: ReplicaRow) -> str:
    if not row.shared_state:
        return "-"
    return f"{row.kv_failures}" + ("" if row.kv_up else " (a replica is on local state)")


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"
