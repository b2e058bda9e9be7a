"""`python -m tests.benchmarks.floor_ratio` (README "Performance"): the ratios it reports are
those of the rows `callout bench --json` writes, and the command runs end to end."""

from __future__ import annotations

import pytest

from tests.benchmarks.floor_ratio import main, ratios, summary


def _row(scenario: str, concurrency: int, cpu: float, p50: float) -> dict[str, object]:
    return {
        "scenario": scenario,
        "concurrency": concurrency,
        "p50_ms": p50,
        "cpu_ms_per_auth": {"service": cpu, "nats-server": 1.0},
    }


def test_ratios_divide_each_concurrency_by_the_floor_at_the_same_concurrency() -> None:
    rows = [
        _row("floor", 1, 0.2, 0.5),
        _row("floor", 8, 0.1, 1.0),
        _row("password-cached", 1, 0.3, 0.6),
        _row("password-cached", 8, 0.12, 1.5),
        _row("nkey", 1, 9.0, 9.0),  # another scenario: not counted
    ]
    found = ratios(rows, "password-cached")
    assert found == {1: pytest.approx((1.5, 1.2)), 8: pytest.approx((1.2, 1.5))}


def test_the_summary_is_the_median_and_range_over_runs() -> None:
    runs = [{1: (1.5, 1.1)}, {1: (1.2, 1.0)}, {1: (1.3, 1.3)}]
    assert summary(runs)[2] == "| 1 | 1.30 (1.20-1.50) | 1.10 (1.00-1.30) |"


@pytest.mark.integration
@pytest.mark.slow
def test_the_command_runs_the_bench_and_prints_the_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--runs", "1", "--count", "40", "--duration", "1", "--concurrency", "1"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "1 runs of password-cached"
    assert lines[3].startswith("| 1 | ")
