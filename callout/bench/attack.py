"""The attack scenario: honest logins measured while attackers hammer the service.

Three phases against one nats-server + service (token and static backends, every other setting
the default, so the throttle is on):

1. **unloaded**: honest token, nkey and cached-password clients (``honest`` of each kind, back
   to back, from 127.0.0.1) for ``duration`` seconds: their reference rate and p99;
2. **attack**: the same honest clients while ``attackers`` clients send CONNECTs with wrong
   passwords (a new guess every time) for the honest password users' names, spread over
   ``sources`` loopback addresses (127.0.0.2 ... 127.0.0.9);
3. **spray** (``spray`` > 0): the honest clients while ``spray`` distinct unknown nkeys (or user
   names) each try once, from the same source addresses.

Every attempt is classified (`Outcome`). The service's resident set size is sampled from /proc
all along: the peak during the attack, and the size after the spray.

The attackers and the spray run in a process of their own: real attackers are not on the
honest clients' machine, and 600 clients in the honest clients' event loop would delay their
logins in the load generator itself, not in the service. They still share the two cores.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import multiprocessing
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callout.bench.driver import Stack
from callout.bench.outcomes import Tally
from callout.bench.procstat import RssSampler, rss_bytes
from callout.bench.rawnats import Credential, login
from callout.bench.scenarios import BenchIdentities, Scenario
from callout.protocol.nkeys import KeyPair, KeyRole

LIMIT = 5.0  # the client's own bound on each step of a login
SOURCES = tuple(f"127.0.0.{host}" for host in range(2, 10))
HONEST_KINDS = ("token", "nkey", "password-cached")

ATTACK = Scenario(
    "attack",
    "honest token, nkey and cached-password logins while wrong passwords flood in",
    BenchIdentities.password_credentials,
    tokens=True,
)


@dataclass(frozen=True)
class AttackPlan:
    attackers: int = 600
    sources: int = len(SOURCES)
    honest: int = 2  # clients per honest kind
    duration: float = 15.0
    spray: int = 0
    spray_kind: str = "nkey"  # or "user"
    spray_concurrency: int = 256


@dataclass
class AttackResult:
    plan: AttackPlan
    honest: dict[str, dict[str, Tally]] = field(default_factory=dict)  # phase -> kind -> tally
    attackers: Tally = field(default_factory=Tally)
    spray: Tally = field(default_factory=Tally)
    rss: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        unloaded = self.honest.get("unloaded", {})
        phases: dict[str, object] = {}
        for phase, kinds in self.honest.items():
            phases[phase] = {
                kind: {
                    **tally.as_dict(),
                    "of_unloaded": _ratio(tally.rate, unloaded[kind].rate)
                    if kind in unloaded
                    else None,
                }
                for kind, tally in kinds.items()
            }
        return {
            "plan": self.plan.__dict__,
            "honest": phases,
            "attackers": self.attackers.as_dict(),
            "spray": self.spray.as_dict(),
            "service_rss_mb": {k: round(v / 2**20, 1) for k, v in self.rss.items()},
        }


def _ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 3) if reference else None


async def _clients(
    port: int,
    credentials: Callable[[], Credential | None],
    tally: Tally,
    *,
    concurrency: int,
    running: Callable[[], bool],
    sources: tuple[str, ...] = (),
) -> None:
    """``concurrency`` clients log in back to back while ``running()`` and credentials last."""
    started = time.perf_counter()

    async def client(index: int) -> None:
        source = sources[index % len(sources)] if sources else None
        while running():
            credential = credentials()
            if credential is None:
                return
            tally.add(await login("127.0.0.1", port, credential, LIMIT, source))

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    tally.elapsed = time.perf_counter() - started


def _cycle(credentials: list[Credential]) -> Callable[[], Credential]:
    items = itertools.cycle(credentials)
    return lambda: next(items)


def _guesses(names: tuple[str, ...]) -> Callable[[], Credential]:
    cycle = itertools.cycle(names)
    return lambda: Credential({"user": next(cycle), "pass": f"guess-{secrets.token_hex(6)}"})


@dataclass(frozen=True)
class _Load:
    """What the load process runs: guesses for ``names`` for ``seconds``, or ``spray`` keys."""

    port: int
    concurrency: int
    sources: tuple[str, ...]
    names: tuple[str, ...] = ()
    seconds: float = 0.0
    spray: int = 0
    spray_kind: str = "nkey"


def _run_load(load: _Load) -> Tally:
    """The body of the load process: its clients on an event loop of their own."""
    credentials = _spray_keys(load.spray_kind, load.spray) if load.spray else _guesses(load.names)
    running = _until(load.seconds) if not load.spray else (lambda: True)
    tally = Tally()
    asyncio.run(
        _clients(
            load.port,
            credentials,
            tally,
            concurrency=load.concurrency,
            running=running,
            sources=load.sources,
        )
    )
    return tally


def _spray_keys(kind: str, count: int) -> Callable[[], Credential | None]:
    def keys() -> Iterator[Credential]:
        for index in range(count):
            if kind == "nkey":
                yield Credential(nkey=KeyPair.generate(KeyRole.USER))
            else:
                yield Credential({"user": f"spray-{index}", "pass": "spray"})

    items = keys()
    return lambda: next(items, None)


class _Honest:
    """The honest clients of every kind, run for one phase."""

    def __init__(self, port: int, identities: BenchIdentities, concurrency: int) -> None:
        self.port = port
        self.concurrency = concurrency
        self.credentials = {
            "token": identities.token_credentials(),
            "nkey": identities.nkey_credentials(),
            "password-cached": identities.password_credentials(),
        }

    async def run(self, running: Callable[[], bool]) -> dict[str, Tally]:
        tallies = {kind: Tally() for kind in HONEST_KINDS}
        await asyncio.gather(
            *(
                _clients(
                    self.port,
                    _cycle(self.credentials[kind]),
                    tallies[kind],
                    concurrency=self.concurrency,
                    running=running,
                )
                for kind in HONEST_KINDS
            )
        )
        return tallies

    async def warm(self) -> None:
        """One login per credential: cached passwords are in the decision cache after it."""
        for credentials in self.credentials.values():
            for credential in credentials:
                await login("127.0.0.1", self.port, credential, LIMIT)


def _until(seconds: float) -> Callable[[], bool]:
    deadline = time.perf_counter() + seconds
    return lambda: time.perf_counter() < deadline


async def run_attack(directory: Path, plan: AttackPlan) -> AttackResult:
    """Start the stack, run the phases, stop everything (also on failure or cancellation)."""
    identities = BenchIdentities.create()
    stack = Stack(directory, identities, ATTACK)
    result = AttackResult(plan)
    phases = _Phases()
    try:
        stack.start()
        assert stack.service is not None  # noqa: S101 - started above
        await _phases(
            stack.port,
            stack.service.pid,
            identities=identities,
            plan=plan,
            result=result,
            phases=phases,
        )
    finally:
        await phases.stop()
        stack.stop()
    return result


class _Phases:
    """What runs in the background (attackers, spray, the RSS sampler) and its stop switch:
    every client loop also ends when `stop` is called."""

    def __init__(self) -> None:
        self.stopped = False
        self.tasks: list[asyncio.Task[None]] = []
        self.rss: RssSampler | None = None
        # spawn: a fresh interpreter, not a fork of this one's running event loop
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    def load(self, load: _Load) -> asyncio.Future[Tally]:
        """Run ``load`` in the load process; bounded by its own seconds or key count."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.pool, functools.partial(_run_load, load))

    def start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self.tasks.append(task)
        return task

    async def stop(self) -> None:
        self.stopped = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.pool.shutdown(wait=True, cancel_futures=True)  # a running load ends by its bound
        if self.rss is not None:
            await self.rss.stop()


async def _phases(
    port: int,
    pid: int,
    *,
    identities: BenchIdentities,
    plan: AttackPlan,
    result: AttackResult,
    phases: _Phases,
) -> None:
    sources = SOURCES[: max(1, min(plan.sources, len(SOURCES)))]
    rss = phases.rss = RssSampler(pid)
    rss.start()
    honest = _Honest(port, identities, plan.honest)
    await honest.warm()
    result.rss["before"] = rss.sample()
    result.honest["unloaded"] = await honest.run(_until(plan.duration))
    ramp = 1.0  # let the attackers ramp up before the honest clients are measured
    attack = phases.load(
        _Load(
            port,
            plan.attackers,
            sources,
            names=tuple(identities.passwords),
            seconds=ramp + plan.duration,
        )
    )
    await asyncio.sleep(ramp)
    result.honest["attack"] = await honest.run(lambda: not attack.done())
    result.attackers = await attack
    result.rss["peak_attack"] = rss.peak
    if plan.spray:
        spray = phases.load(
            _Load(
                port,
                plan.spray_concurrency,
                sources,
                spray=plan.spray,
                spray_kind=plan.spray_kind,
            )
        )
        result.honest["spray"] = await honest.run(lambda: not spray.done())
        result.spray = await spray
        result.rss["after_spray"] = rss_bytes(pid)[0]
    result.rss["peak"] = await rss.stop()


def format_attack(result: AttackResult) -> str:
    """A Markdown table of the honest clients per phase, then attackers, spray and memory."""
    lines = [
        "| phase | kind | ok/s | of unloaded | p99 ms | timeouts | outcomes |",
        "|" + "---|" * 7,
    ]
    unloaded = result.honest.get("unloaded", {})
    for phase, kinds in result.honest.items():
        for kind, tally in kinds.items():
            reference = unloaded[kind].rate if kind in unloaded else 0.0
            ratio = _ratio(tally.rate, reference)
            outcomes = ", ".join(f"{o.value} {n}" for o, n in sorted(tally.outcomes.items()))
            lines.append(
                f"| {phase} | {kind} | {tally.rate:.1f} | {ratio if ratio is not None else '-'} "
                f"| {1000 * tally.p99():.1f} | {tally.timeouts} | {outcomes} |"
            )
    for name, tally in (("attackers", result.attackers), ("spray", result.spray)):
        if tally.attempts:
            outcomes = ", ".join(f"{o.value} {n}" for o, n in sorted(tally.outcomes.items()))
            lines.append(
                f"\n{name}: {tally.attempts} attempts in {tally.elapsed:.1f} s: {outcomes}"
            )
            if tally.others:
                lines.append(f"{name}, other errors: {dict(tally.others)}")
    memory = ", ".join(f"{k} {v / 2**20:.1f} MB" for k, v in result.rss.items())
    lines.append(f"\nservice RSS: {memory}")
    return "\n".join(lines)
