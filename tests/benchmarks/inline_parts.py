"""What the parts of one cached-password login cost, next to the floor, in one process.

`callout bench` compares whole processes over sockets, and on a shared machine its ratios move
by tens of percent between invocations. This measures the same thing without the sockets:
batches of the service's inline login (`Worker._on_message` with the service's observer and
throttle, a recording connection) and batches of the floor's `FloorResponder.answer` over
the same requests, alternating, and takes the fastest batch of each (CPU time per login).
It does so for the whole login and again with parts switched off, so the table says what
each part adds over the floor:

- ``whole``: as the service runs it (audit line to /dev/null, metrics, throttle);
- ``no audit line``: `audit.log: false`;
- ``no report``: no audit line and no metrics (an observer that does nothing);
- ``no report, no throttle``: the same without a throttle: opening, deciding and signing.

    .venv/bin/python -m tests.benchmarks.inline_parts --batches 25 --batch 300
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callout.bench.floor import FloorResponder
from callout.observability import logs
from callout.observability.audit import AuditLog
from callout.observability.metrics import Metrics
from callout.observability.observer import ServiceObserver
from callout.service.runtime import Runtime
from callout.service.throttle import Throttle
from callout.service.worker import Worker
from callout.testing import ServerSimulator
from tests.unit.service.test_inline import ISSUER, _Log, _Msg, _worker, inline_runtime


class _Silent:
    """An observer told about every login that does nothing with it."""

    def decided(self, *_: Any, **__: Any) -> None:
        pass

    def dropped(self, *_: Any, **__: Any) -> None:
        pass


@dataclass(frozen=True)
class Variant:
    name: str
    observer: Callable[[], Any]
    throttled: bool = True


VARIANTS = (
    Variant("whole", lambda: ServiceObserver(metrics=Metrics(), audit=AuditLog())),
    Variant("no audit line", lambda: ServiceObserver(metrics=Metrics(), audit=AuditLog(log=False))),
    Variant("no report", _Silent),
    Variant("no report, no throttle", _Silent, throttled=False),
)


@dataclass(frozen=True)
class Measured:
    name: str
    ours_us: float
    floor_us: float

    @property
    def ratio(self) -> float:
        return self.ours_us / self.floor_us


def _requests(count: int) -> list[_Msg]:
    server = ServerSimulator()
    connect = {"user": "alice", "pass": "pw"}
    return [
        _Msg(
            server.request(now=int(time.time()), timeout=600, connect=connect)[0], None, "_INBOX.r"
        )
        for _ in range(count)
    ]


def measure(variant: Variant, runtime: Runtime, batches: int, batch: int) -> Measured:
    """The fastest of ``batches`` batches of ``batch`` logins, ours and the floor's, alternating
    (CPU microseconds per login)."""
    requests = _requests(batches * batch + 1)
    throttle = Throttle(window=60, max_per_principal=10, max_per_ip=100)
    worker, connection, _ = _worker(runtime, throttle if variant.throttled else None)
    worker.observer = variant.observer()
    floor = FloorResponder(ISSUER, "APP", None)
    payloads = [message.data for message in requests[:batch]]
    pending: Iterator[_Msg] = iter(requests)
    loop = asyncio.new_event_loop()

    async def one() -> None:
        await worker._on_message(next(pending))
        await asyncio.sleep(0)  # the report queued behind the reply

    async def ours() -> None:
        for _ in range(batch):
            await one()

    async def floors() -> None:
        for payload in payloads:
            floor.answer(payload, None)
            await asyncio.sleep(0)

    try:
        loop.run_until_complete(_warm(worker, connection, one))
        ours_best = floor_best = float("inf")
        for _ in range(batches):
            floor_best = min(floor_best, _cpu(loop, floors()))
            ours_best = min(ours_best, _cpu(loop, ours()))
            connection.events.clear()
        answered = worker.inline
    finally:
        loop.run_until_complete(worker.stop(grace=5.0))
        loop.close()
    if answered < batches * batch:  # every measured login must have been answered inline
        raise RuntimeError(f"{variant.name}: {answered} of {batches * batch} answered inline")
    return Measured(variant.name, ours_best / batch * 1e6, floor_best / batch * 1e6)


async def _warm(worker: Worker, connection: _Log, one: Callable[[], Any]) -> None:
    """The first login verifies the password (in a task); later ones hit the cache."""
    await worker.start(connection)
    await one()
    await worker.stop(grace=5.0)
    await worker.start(connection)
    worker.inline = 0


def _cpu(loop: asyncio.AbstractEventLoop, work: Any) -> float:
    started = time.process_time()
    loop.run_until_complete(work)
    return time.process_time() - started


def table(rows: list[Measured]) -> list[str]:
    lines = ["| parts | ours, µs per login | floor, µs | ours ÷ floor |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.ours_us:.1f} | {r.floor_us:.1f} | {r.ratio:.2f} |" for r in rows]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=25)
    parser.add_argument("--batch", type=int, default=300)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory, open("/dev/null", "w") as sink:
        logs.configure("info", "json", sink)
        runtime = inline_runtime(Path(directory))
        rows = [measure(variant, runtime, args.batches, args.batch) for variant in VARIANTS]
    sys.stdout.write("\n".join(table(rows)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
