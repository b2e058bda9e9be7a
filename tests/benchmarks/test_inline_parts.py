"""`python -m tests.benchmarks.inline_parts` (README "Performance") runs as the README shows it
and prints one row per set of parts, every login of every batch answered inline."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.benchmarks.inline_parts import VARIANTS, Measured, table


def test_the_table_divides_ours_by_the_floor() -> None:
    lines = table([Measured("whole", 300.0, 200.0)])
    assert lines[2] == "| whole | 300.0 | 200.0 | 1.50 |"


@pytest.mark.slow
def test_the_command_prints_a_row_per_set_of_parts() -> None:
    command = [sys.executable, "-m", "tests.benchmarks.inline_parts", "--batches", "2"]
    done = subprocess.run(
        [*command, "--batch", "5"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()[2:]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == [v.name for v in VARIANTS]
    for row in rows:
        ours, floor, ratio = (float(cell) for cell in row.strip("| ").split(" | ")[1:])
        assert ours > 0
        assert floor > 0
        assert ratio == pytest.approx(ours / floor, abs=0.01)
