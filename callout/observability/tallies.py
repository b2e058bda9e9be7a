"""Per-request metrics without locks: plain tallies on the event loop, read at scrape time.

prometheus_client's `Counter` and `Histogram` take a lock on every update, which costs more
than the counting itself; every login updates four of them. The metrics a request touches
are tallied here instead, by the event-loop thread that handles requests and serves
``/metrics``, and `TallyCollector` turns them into the same counter and histogram families
(``_total``, ``_bucket``/``_sum``/``_count``) when Prometheus scrapes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class CounterTally:
    """A labelled counter (exported as ``<name>_total``)."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + 1.0

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in list(self.values.items()):
            family.add_metric(labels, value)
        return family


class _Series:
    """One label set of a histogram: a count per bucket (the last is +Inf) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self, bounds: int) -> None:
        self.counts = [0] * (bounds + 1)
        self.total = 0.0


class HistogramTally:
    """A labelled histogram with fixed upper bounds (``le``), Prometheus semantics."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], bounds: Sequence[float]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.bounds = tuple(sorted(bounds))
        self.series: dict[tuple[str, ...], _Series] = {}

    def prime(self, *labels: str) -> None:
        """Create a series with no observations (exported with zero counts)."""
        self.series.setdefault(labels, _Series(len(self.bounds)))

    def observe(self, value: float, *labels: str) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Series(len(self.bounds))
        series.counts[bisect_left(self.bounds, value)] += 1  # first bound >= value: le
        series.total += value

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        edges = [*map(floatToGoString, self.bounds), "+Inf"]
        for labels, series in list(self.series.items()):
            cumulative, running = [], 0
            for edge, count in zip(edges, list(series.counts), strict=True):
                running += count
                cumulative.append((edge, float(running)))
            family.add_metric(labels, cumulative, sum_value=series.total)
        return family


class CounterView:
    """A counter computed at scrape time from another tally (``values``): nothing counted twice."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        values: Callable[[], dict[tuple[str, ...], float]],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.values = values

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in self.values().items():
            family.add_metric(labels, value)
        return family


class Tally(Protocol):
    def family(self) -> CounterMetricFamily | HistogramMetricFamily: ...


class TallyCollector(Collector):
    """Exports tallies through a `CollectorRegistry`."""

    def __init__(self, tallies: Sequence[Tally]) -> None:
        self.tallies = tuple(tallies)

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        for tally in self.tallies:
            yield tally.family()
