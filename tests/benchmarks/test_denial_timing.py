"""The denial-timing measurement runs (one round): the command the docs show works."""

from __future__ import annotations

import pytest

from tests.benchmarks import denial_timing
from tests.integration.backends.conftest import _slapd_binary


def test_the_denial_timing_script_measures_every_order_and_case(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _slapd_binary()  # skips without slapd, fails under CI=true
    assert denial_timing.main(["--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for order in denial_timing.ORDERS:
        for case in denial_timing.CASES:
            assert any(line.startswith(f"{order:24} {case:22} median") for line in lines)
