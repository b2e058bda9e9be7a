"""CPU time and memory of processes from /proc: CPU milliseconds per auth, peak RSS."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class CpuMeter:
    """CPU seconds spent by each named process between `start` and `stop`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        self.spent = {name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}
        return self.spent


def rss_bytes(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of ``pid`` in bytes: VmRSS and VmHWM (Linux /proc)."""
    values = {"VmRSS": 0, "VmHWM": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in values:
            values[name] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


class RssSampler:
    """The largest resident set size of one process seen between `start` and `stop`: VmRSS
    sampled every ``interval`` seconds in a task, and the kernel's own peak (VmHWM) at each
    sample, so a spike between two samples is not missed."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> int:
        try:
            current, high_water = rss_bytes(self.pid)
        except (OSError, ValueError):  # the process has exited
            return 0
        self.peak = max(self.peak, current, high_water)
        return current

    def start(self) -> None:
        self.sample()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sample()

    async def stop(self) -> int:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sample()
        return self.peak
