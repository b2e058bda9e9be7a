"""The replica mode's report from plain rows: the added latency pairs each "on" window with the
"off" window of the same scenario and concurrency, and the table says what ran."""

from __future__ import annotations

import pytest

from callout.bench.driver import Row
from callout.bench.loadgen import LoadResult
from callout.bench.replicareport import ReplicaRow, added_latency, format_replicas
from callout.bench.replicas import unfit_for_replicas
from callout.bench.scenarios import SCENARIOS, NewNames


def _row(scenario: str, concurrency: int, shared: bool, latency: float) -> ReplicaRow:
    result = LoadResult(latencies=[latency] * 10, elapsed=1.0)
    row = Row(scenario, concurrency, result, {"service": 0.01, "nats-server": 0.01})
    return ReplicaRow(row, shared, [6, 4], shed=1)


def test_added_latency_is_on_minus_off_for_the_same_scenario_and_concurrency() -> None:
    rows = [
        _row("nkey", 1, False, 0.003),
        _row("nkey", 8, False, 0.010),
        _row("nkey", 1, True, 0.004),
        _row("nkey", 8, True, 0.009),
        _row("token", 1, True, 0.002),  # no "off" window: nothing to subtract from
    ]
    added = added_latency(rows)
    assert [(name, conc) for name, conc, _, _ in added] == [("nkey", 1), ("nkey", 8)]
    assert added[0][2:] == pytest.approx((1.0, 1.0))
    assert added[1][2:] == pytest.approx((-1.0, -1.0))


def test_the_report_names_the_set_up_and_every_window() -> None:
    text = format_replicas([_row("nkey", 1, False, 0.003), _row("nkey", 1, True, 0.004)], 2)
    assert "2 replica(s)" in text
    assert "R1 buckets" in text
    assert (
        "| nkey | off | 1 | 10.0 | 3.0 | 3.0 | 0 | 1.000 | 1.000 | 0.000 | 6 / 4 | 1 | - |" in text
    )
    assert "| nkey | on | 1 |" in text
    assert "| nkey | 1 | +1.00 | +1.00 |" in text


def test_as_dict_carries_the_mode_and_the_replicas_answers() -> None:
    d = _row("nkey", 1, True, 0.003).as_dict()
    assert (d["replicas"], d["shared_state"], d["answered_by_replica"]) == (2, "on", [6, 4])
    assert (d["shed_overloaded"], d["kv_failures"], d["kv_up"]) == (1, 0, True)


@pytest.mark.parametrize(
    ("name", "fit"),
    [("floor", False), ("nkey-xkey", False), ("nkey-beside-fresh", False), ("nkey", True)],
)
def test_scenarios_that_need_their_own_server_or_process_are_refused(name: str, fit: bool) -> None:
    assert (unfit_for_replicas(SCENARIOS[name]) is None) is fit


def test_new_names_are_distinct_within_a_list_and_between_lists() -> None:
    """Every login of wrong-password-new-name is a name no earlier login used."""
    first, second = NewNames(), NewNames()
    names = {first[i].fields["user"] for i in range(1000)} | {second[0].fields["user"]}
    assert len(names) == 1001
    assert first[-1].fields["user"] == first[len(first) - 1].fields["user"]
    with pytest.raises(IndexError):
        first[len(first)]


def test_the_report_says_when_the_servers_are_a_cluster_with_r3_buckets() -> None:
    text = format_replicas([_row("nkey", 1, True, 0.003)], 3, nodes=3)
    assert "a 3-node nats-server cluster" in text
    assert "R3 buckets (state.replicas: 3)" in text
