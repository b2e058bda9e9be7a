"""The benchmark driver itself: a scenario with background load yields both rows, measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from callout.bench.driver import run_scenario
from callout.bench.scenarios import SCENARIOS, BenchIdentities

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_cheap_logins_are_measured_beside_a_saturated_argon2_pool(tmp_path: Path) -> None:
    """The starvation scenario: nkey logins succeed while fresh passwords keep the KDF busy."""
    rows = await run_scenario(
        tmp_path,
        BenchIdentities.create(),
        SCENARIOS["nkey-beside-fresh"],
        concurrencies=[2],
        count=40,
        duration=4.0,
    )
    measured, background = rows
    assert (measured.scenario, background.scenario) == (
        "nkey-beside-fresh",
        "nkey-beside-fresh: background",
    )
    assert measured.result.ok == 40
    assert measured.result.failed == 0
    assert background.result.ok > 0
    # On a busy machine the argon2 lane refuses what it cannot decide in time: a signed
    # `overloaded` deny at once, never a timeout.
    assert set(background.result.failures) <= {"-ERR 'Authorization Violation'"}
    assert measured.cpu_seconds["service"] > 0
    assert background.cpu_seconds == {}
