"""Our cost over the floor's, as the median of several `callout bench` invocations.

One invocation measures the floor and the scenario one after the other, a few seconds each;
on a shared machine a neighbour's burst lands in one of them and moves the ratio by tens of
percent. This runs ``callout bench --scenario SCENARIO --no-baseline --json`` ``--runs``
times and prints, per concurrency, the median (and range) of service CPU per login ÷ the
floor's and p50 ÷ the floor's: the numbers README "Performance" reports against issue #20's
targets (≤ 1.3 and ≤ 1.15 at c=1).

    .venv/bin/python -m tests.benchmarks.floor_ratio --runs 5 --count 1500 --duration 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

Rows = list[dict[str, Any]]


def ratios(rows: Rows, scenario: str) -> dict[int, tuple[float, float]]:
    """Per concurrency: (service CPU ÷ floor, p50 ÷ floor) of one invocation's rows."""
    floor = {row["concurrency"]: row for row in rows if row["scenario"] == "floor"}
    found: dict[int, tuple[float, float]] = {}
    for row in rows:
        base = floor.get(row["concurrency"])
        if row["scenario"] != scenario or base is None:
            continue
        cpu = row["cpu_ms_per_auth"]["service"] / base["cpu_ms_per_auth"]["service"]
        found[row["concurrency"]] = (cpu, row["p50_ms"] / base["p50_ms"])
    return found


def _bench(args: argparse.Namespace, out: Path) -> Rows:
    command = [
        *(sys.executable, "-m", "callout", "bench", "--no-baseline"),
        *("--scenario", args.scenario, "--concurrency", args.concurrency),
        *("--count", str(args.count), "--duration", str(args.duration), "--json", str(out)),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=900)
    rows: Rows = json.loads(out.read_text())
    return rows


def summary(runs: list[dict[int, tuple[float, float]]]) -> list[str]:
    lines = ["| conc | service CPU ÷ floor, median (range) | p50 ÷ floor, median (range) |"]
    lines.append("|---|---|---|")
    for concurrency in sorted({c for run in runs for c in run}):
        cpu = [run[concurrency][0] for run in runs if concurrency in run]
        p50 = [run[concurrency][1] for run in runs if concurrency in run]
        lines.append(
            f"| {concurrency} | {statistics.median(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f}) "
            f"| {statistics.median(p50):.2f} ({min(p50):.2f}-{max(p50):.2f}) |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", default="password-cached")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--duration", type=float, default=4.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        runs = [
            ratios(_bench(args, Path(directory) / f"{number}.json"), args.scenario)
            for number in range(args.runs)
        ]
    sys.stdout.write("\n".join([f"{args.runs} runs of {args.scenario}", *summary(runs)]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
