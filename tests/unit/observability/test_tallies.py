"""Lock-free tallies export exactly what prometheus_client's own metrics would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from callout.observability.metrics import LATENCY_BUCKETS
from callout.observability.tallies import CounterTally, HistogramTally, TallyCollector

LABELS = st.sampled_from(["allow", "deny", "error"])


def _exposition(registry: CollectorRegistry) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return sorted(line for line in lines if "_created" not in line)


@given(st.lists(st.tuples(LABELS, st.floats(min_value=0, max_value=5)), max_size=40))
def test_tallies_render_like_prometheus_client_metrics(
    observations: list[tuple[str, float]],
) -> None:
    """Dashboards and alerts written against the old metrics keep working unchanged."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = CounterTally("demo_requests", "Requests.", ["outcome"])
    histogram = HistogramTally("demo_seconds", "Latency.", ["outcome"], LATENCY_BUCKETS)
    ours.register(TallyCollector([counter, histogram]))
    reference_counter = Counter("demo_requests", "Requests.", ["outcome"], registry=theirs)
    reference_histogram = Histogram(
        "demo_seconds", "Latency.", ["outcome"], buckets=LATENCY_BUCKETS, registry=theirs
    )
    for outcome, seconds in observations:
        counter.inc(outcome)
        histogram.observe(seconds, outcome)
        reference_counter.labels(outcome).inc()
        reference_histogram.labels(outcome).observe(seconds)
    assert _exposition(ours) == _exposition(theirs)


def test_an_observation_on_a_bound_falls_into_that_bucket() -> None:
    """Prometheus buckets are inclusive upper bounds (le)."""
    histogram = HistogramTally("demo_seconds", "Latency.", [], [0.1, 1.0])
    histogram.observe(0.1)
    family = histogram.family()
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert buckets == {"0.1": 1.0, "1.0": 1.0, "+Inf": 1.0}
