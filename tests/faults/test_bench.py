"""The benchmark driver itself: a scenario with background load yields both rows, measured."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from callout.bench.driver import floor_ratios, format_table, run_scenario
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


async def test_the_floor_logs_clients_in_and_the_table_divides_by_it(tmp_path: Path) -> None:
    """The floor responder logs real clients in through a real nats-server, and the table
    divides the service's CPU and p50 by the floor's at the same concurrency."""
    identities = BenchIdentities.create()
    floor = await run_scenario(
        tmp_path / "floor", identities, SCENARIOS["floor"], concurrencies=[2], count=30, duration=4
    )
    ours = await run_scenario(
        tmp_path / "ours", identities, SCENARIOS["token"], concurrencies=[2], count=30, duration=4
    )
    assert floor[0].result.ok == 30, floor[0].result.failures
    assert floor[0].cpu_seconds["service"] > 0
    ((name, concurrency, cpu, p50),) = floor_ratios(floor + ours)
    assert (name, concurrency) == ("token", 2)
    assert cpu > 0
    assert p50 > 0
    assert "| token | 2 |" in format_table(floor + ours).split("service CPU ÷ floor")[1]


async def test_the_service_answers_on_uvloop(tmp_path: Path) -> None:
    """``service.event_loop: uvloop``: token logins (answered inline) through a real server."""
    scenario = replace(
        SCENARIOS["token"], name="token-uvloop", settings={"service": {"event_loop": "uvloop"}}
    )
    (row,) = await run_scenario(
        tmp_path, BenchIdentities.create(), scenario, concurrencies=[2], count=30, duration=4
    )
    assert row.result.ok == 30, row.result.failures
