"""The benchmark driver: start the processes, drive load, meter CPU, report.

For each scenario it starts, on 127.0.0.1 with random ports, nats-server + this service (as a
separate `callout serve` process, so its CPU is its own) and, once, nats-server with the same
users as static config: the baseline, the physical limit of the machine.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol, cast

from argon2 import PasswordHasher

from callout.bench.loadgen import LoadResult, run_load
from callout.bench.procstat import CpuMeter
from callout.bench.rawnats import Credential
from callout.bench.scenarios import FLOOR, PEPPER, BenchIdentities, Scenario
from callout.credentials.passwords import hash_password
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.devserver.service_process import ServiceProcess, write_settings
from callout.secretfiles import write_secret


@dataclass
class Row:
    """One measured window: a scenario at one concurrency."""

    scenario: str
    concurrency: int
    result: LoadResult
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    def cpu_ms_per_auth(self, process: str) -> float:
        ok = self.result.ok
        return 1000 * self.cpu_seconds.get(process, 0.0) / ok if ok else float("nan")

    def as_dict(self) -> dict[str, object]:
        r = self.result
        return {
            "scenario": self.scenario,
            "concurrency": self.concurrency,
            "ok": r.ok,
            "failed": r.failed,
            "failures": dict(r.failures),
            "auths_per_s": round(r.rate, 1),
            "p50_ms": round(1000 * r.percentile(0.50), 2),
            "p90_ms": round(1000 * r.percentile(0.90), 2),
            "p99_ms": round(1000 * r.percentile(0.99), 2),
            "max_ms": round(1000 * max(r.latencies, default=0.0), 2),
            "cpu_ms_per_auth": {p: round(self.cpu_ms_per_auth(p), 3) for p in self.cpu_seconds},
        }


class FloorProcess(ServiceProcess):
    """The floor responder (`callout.bench.floor`) in place of ``callout serve``."""

    def start(self) -> None:
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
                [sys.executable, "-m", "callout.bench.floor", "--config", str(self.config_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )


class Stack:
    """nats-server (+ the service, unless this is the baseline) for one scenario."""

    def __init__(
        self, directory: Path, identities: BenchIdentities, scenario: Scenario | None
    ) -> None:
        self.directory = directory
        self.identities = identities
        self.scenario = scenario
        self.port = free_port()
        self.server: NatsServer | None = None
        self.service: ServiceProcess | None = None
        self.reconnect_wait = 0.25
        self.metrics_port: int | None = None  # set before start(): /metrics on this port
        # set before start(): JetStream on, and the service's decision cache (and throttle)
        # shared through KV, so a restarted service reads the cache back
        self.shared_state = False

    @property
    def ports(self) -> list[int]:
        return [self.port]

    @property
    def pids(self) -> dict[str, int]:
        pids = (
            {"nats-server": self.server.process.pid} if self.server and self.server.process else {}
        )
        if self.service is not None:
            pids["service"] = self.service.pid
        return pids

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.scenario is None:
            config = self.directory / "baseline.conf"
            config.write_text(
                f"listen: 127.0.0.1:{self.port}\n"
                f"authorization {{\n  users: [\n    {self.identities.static_users()}\n  ]\n}}\n"
            )
            self.server = NatsServer(config, self.port)
            self.server.start()
            return
        setup = ConfigModeSetup(
            self.directory / "keys",
            self.port,
            encrypted=self.scenario.xkey,
            jetstream=self.shared_state,
        ).write()
        policies = self.directory / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "bench.yaml").write_text(self.identities.policy_yaml("APP"))
        overrides: dict[str, object] = {"nats": self._nats(setup), **self.scenario.settings}
        if self.metrics_port is not None:
            overrides["http"] = {"enabled": True, "host": "127.0.0.1", "port": self.metrics_port}
        if self.shared_state:
            key = self.directory / "state-key"
            write_secret(key, secrets.token_hex(32))
            overrides["state"] = {"enabled": True, "key_file": key, "replicas": 1}
        if self.scenario.tokens:
            pepper = self.directory / "pepper"
            write_secret(pepper, PEPPER.decode())
            overrides["backends"] = [{"type": "token", "pepper_file": pepper}, {"type": "static"}]
        config = write_settings(
            setup.settings(policies, **overrides), self.directory / "callout.yaml"
        )
        self.server = NatsServer(setup.config_file, self.port)
        self.server.start()
        process = FloorProcess if self.scenario.floor else ServiceProcess
        self.service = process(config, self.directory / "service.log")
        self.service.start()
        self.service.wait_for(timeout=30.0)

    def _nats(self, setup: ConfigModeSetup) -> dict[str, object]:
        return {
            "servers": [f"nats://127.0.0.1:{self.port}"],
            "user": setup.auth_user,
            "password_file": setup.password_file,
            "reconnect_wait": self.reconnect_wait,
        }

    def restart_service(self) -> None:
        """Stop the service and start it again (an empty decision cache); back when ready."""
        if self.service is None:
            raise RuntimeError("no service in this stack")
        self.service.stop()
        after = len(self.service.text())
        self.service.start()
        self.service.wait_for(timeout=30.0, after=after)

    def metric(self, name: str) -> float:
        """The sum of every sample of ``name`` on the service's /metrics (needs metrics_port)."""
        if self.metrics_port is None:
            raise RuntimeError("no metrics port in this stack")
        return metric(self.metrics_port, name)

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
        if self.server is not None:
            self.server.stop()


class Target(Protocol):
    """What a measured window needs: the port(s) clients log in on, the processes to meter."""

    @property
    def port(self) -> int: ...

    @property
    def ports(self) -> list[int]: ...

    @property
    def pids(self) -> dict[str, int]: ...


def metric(port: int, name: str, label: str = "") -> float:
    """The sum of every sample of ``name`` on the /metrics of 127.0.0.1:``port`` (only those
    whose labels include ``label``, e.g. ``reason="overloaded"``, when given)."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name)
        and line[len(name) : len(name) + 1] in ("{", " ")
        and label in line.rsplit(" ", 1)[0]
    )


async def measure(
    stack: Target,
    name: str,
    credentials: Sequence[Credential],
    *,
    concurrency: int,
    count: int,
    duration: float,
    expect_ok: bool = True,
) -> Row:
    """One measured window with CPU metered for every process involved."""
    meter = CpuMeter({**stack.pids, "loadgen": os.getpid()})
    meter.start()
    result = await run_load(
        "127.0.0.1",
        stack.port,
        credentials,
        concurrency=concurrency,
        count=count,
        duration=duration,
        expect_ok=expect_ok,
        ports=stack.ports,
    )
    return Row(name, concurrency, result, meter.stop())


async def run_scenario(
    directory: Path,
    identities: BenchIdentities,
    scenario: Scenario | None,
    *,
    concurrencies: list[int],
    count: int,
    duration: float,
) -> list[Row]:
    """All concurrencies of one scenario (None = the static baseline, password logins)."""
    stack = Stack(directory, identities, scenario)
    stack.start()
    try:
        name = scenario.name if scenario else "baseline-static"
        credentials = (
            scenario.credentials(identities) if scenario else identities.password_credentials()
        )
        expect_ok = scenario.expect_ok if scenario else True
        await measure(
            stack, name, credentials, concurrency=4, count=40, duration=10, expect_ok=expect_ok
        )
        rows = []
        for concurrency in concurrencies:
            window = partial(
                measure,
                stack,
                name,
                credentials,
                concurrency=concurrency,
                count=count,
                duration=duration,
                expect_ok=expect_ok,
            )
            if scenario is not None and scenario.background is not None:
                background = scenario.background(identities)
                rows += await _beside(window, stack, scenario, background, duration)
            else:
                rows.append(await window())
        return rows
    finally:
        stack.stop()


async def _beside(
    window: Callable[[], Awaitable[Row]],
    stack: Stack,
    scenario: Scenario,
    credentials: Sequence[Credential],
    duration: float,
) -> list[Row]:
    """The measured window while the scenario's background load runs: both rows (the
    background row's CPU columns are empty: the processes are shared)."""
    background = asyncio.create_task(
        run_load(
            "127.0.0.1",
            stack.port,
            credentials,
            concurrency=scenario.background_concurrency,
            count=1 << 30,
            duration=duration + 1.0,
        )
    )
    await asyncio.sleep(1.0)  # let the background load fill the argon2 pool first
    row = await window()
    name = f"{scenario.name}: background"
    return [row, Row(name, scenario.background_concurrency, await background)]


def kdf_limit(seconds: float = 3.0, workers: int | None = None) -> float:
    """Pure argon2id verifications per second on this machine, with the service's parameters
    and thread pool size: the ceiling for fresh password logins."""
    password = "bench-pw-0"  # noqa: S105 - a throwaway benchmark password
    stored = hash_password(password)
    hasher = PasswordHasher()
    count = 0
    deadline = time.monotonic() + seconds
    threads = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(threads) as pool:

        def verify_until_deadline() -> int:
            done = 0
            while time.monotonic() < deadline:
                hasher.verify(stored, password)
                done += 1
            return done

        started = time.monotonic()
        count = sum(pool.map(lambda _: verify_until_deadline(), range(threads)))
        elapsed = time.monotonic() - started
    return count / elapsed


def format_table(rows: list[Row]) -> str:
    """A Markdown table of the rows, then (when the floor ran) each scenario's service CPU and
    p50 divided by the floor's at the same concurrency."""
    header = (
        "| scenario | conc | auths/s | p50 ms | p90 ms | p99 ms | max ms | failed "
        "| CPU ms/auth server | service | loadgen |"
    )
    lines = [header, "|" + "---|" * 11]
    for row in rows:
        d = row.as_dict()
        cpu = cast("dict[str, float]", d["cpu_ms_per_auth"])
        lines.append(
            f"| {d['scenario']} | {d['concurrency']} | {d['auths_per_s']} | {d['p50_ms']} "
            f"| {d['p90_ms']} | {d['p99_ms']} | {d['max_ms']} | {d['failed']} "
            f"| {cpu.get('nats-server', '-')} | {cpu.get('service', '-')} "
            f"| {cpu.get('loadgen', '-')} |"
        )
    ratios = floor_ratios(rows)
    if ratios:
        lines += [
            "",
            "| scenario | conc | service CPU ÷ floor | p50 ÷ floor |",
            "|---|---|---|---|",
        ]
        lines += [f"| {name} | {conc} | {cpu:.2f} | {p50:.2f} |" for name, conc, cpu, p50 in ratios]
    return "\n".join(lines)


def floor_ratios(rows: list[Row]) -> list[tuple[str, int, float, float]]:
    """(scenario, concurrency, service CPU per login ÷ the floor's, p50 ÷ the floor's) for
    every scenario row measured at a concurrency the floor was measured at."""
    floors = {row.concurrency: row for row in rows if row.scenario == FLOOR}
    out = []
    for row in rows:
        floor = floors.get(row.concurrency)
        if floor is None or row.scenario in (FLOOR, "baseline-static") or ":" in row.scenario:
            continue
        cpu = _ratio(row.cpu_ms_per_auth("service"), floor.cpu_ms_per_auth("service"))
        p50 = _ratio(row.result.percentile(0.5), floor.result.percentile(0.5))
        out.append((row.scenario, row.concurrency, cpu, p50))
    return out


def _ratio(ours: float, floor: float) -> float:
    return ours / floor if floor > 0 and not math.isnan(floor) else float("nan")
