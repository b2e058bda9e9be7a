"""The load generator: ``concurrency`` workers log in back to back, bounded by count and time."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from callout.bench.rawnats import Credential, login


@dataclass
class LoadResult:
    """Latencies of successful logins and failures by error, over ``elapsed`` seconds."""

    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_load(
    host: str,
    port: int,
    credentials: Sequence[Credential],
    *,
    concurrency: int,
    count: int,
    duration: float,
    limit: float = 5.0,
    expect_ok: bool = True,
    ports: Sequence[int] = (),
) -> LoadResult:
    """Log in ``count`` times (cycling ``credentials``) or until ``duration`` passes.

    An attempt succeeds when its outcome is the expected one (a refusal, for deny scenarios).
    With ``ports`` (a cluster's nodes), login i goes to ``ports[i % len(ports)]``.
    """
    targets = list(ports) or [port]
    result = LoadResult()
    issued = 0
    started = time.perf_counter()
    deadline = started + duration

    async def worker() -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            credential = credentials[issued % len(credentials)]
            target = targets[issued % len(targets)]
            issued += 1
            attempt = await login(host, target, credential, limit)
            if attempt.ok == expect_ok:
                result.latencies.append(attempt.latency)
            else:
                result.failures[attempt.error or "unexpectedly allowed"] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result
