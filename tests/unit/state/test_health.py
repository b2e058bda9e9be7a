"""The shared-state health: one log line per change, the gauge, the readiness detail."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from callout.state.health import StateHealth
from callout.testing import captured_logs


def test_each_change_is_logged_once_and_shown_in_the_gauge_and_detail() -> None:
    """An outage logs one line however many operations fail, and the detail says why."""
    registry = CollectorRegistry()
    health = StateHealth(registry)
    with captured_logs() as lines:
        health.recovered()
        health.failed("write", TimeoutError())
        health.failed("probe", TimeoutError())
        health.failed("open", TimeoutError())
        health.recovered()
        health.recovered()
    events = [json.loads(line)["event"] for line in lines.getvalue().splitlines()]
    assert events == [
        "shared_state_available",
        "shared_state_unavailable",
        "shared_state_available",
    ]
    assert health.detail() == "shared"
    assert registry.get_sample_value("callout_shared_state_up") == 1
    assert (
        registry.get_sample_value("callout_shared_state_failures_total", {"operation": "probe"})
        == 1
    )
    health.failed("probe", "watch behind")
    assert health.detail() == "local (probe: watch behind)"
    assert registry.get_sample_value("callout_shared_state_up") == 0


def test_a_replica_that_never_reached_kv_says_so_once() -> None:
    health = StateHealth()
    with captured_logs() as lines:
        health.failed("open", TimeoutError())
        health.failed("open", TimeoutError())
    assert lines.getvalue().count("shared_state_unavailable") == 1
    assert health.detail() == "local (open: TimeoutError)"
