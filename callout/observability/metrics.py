"""Prometheus metrics of one service instance, in a registry of its own.

Names and labels follow docs/operations.md#metrics: the ``callout_`` prefix, base units in the name,
counters named without ``_total`` (the client adds it), no high-cardinality labels (never
user names, addresses or token ids). Each `App` owns one `Metrics`, so many apps can live in
one process (tests) without colliding in the global registry.

Every labelled series an alert or the dashboard reads exists at 0 from start-up (`_prime`):
a counter that appears only with its first event makes ``increase(...) > 0`` miss that event.
Label values come from the enums (`Reason`, `DropReason`), so new members are covered.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from callout import __version__
from callout.backends.base import ReloadsFiles
from callout.decision import Decision, DropReason, Lane, Reason
from callout.observability.audit import outcome
from callout.observability.tallies import CounterTally, CounterView, HistogramTally, TallyCollector
from callout.protocol.versions import BANDS

# A 2 s server budget: fine resolution where logins should be, nothing past the budget.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

NO_BACKEND = "none"
OUTCOMES = ("allow", "deny", "error", "dropped")
RELOAD_RESULTS = ("success", "failure")
CACHE_RESULTS = ("hit", "miss")
BACKEND_ERRORS = ("unavailable", "timeout", "error")
AUDIT_DROP_REASONS = ("buffer_full", "publish_failed")
POLICY_KINDS = ("users", "groups", "tokens")
ADVISORY_STATES = ("none", "open")  # server version: lacks no fix / lacks one (or unreadable)


def request_series() -> list[tuple[str, str]]:
    """Every (outcome, reason) pair a request can be counted under."""
    pairs = [("allow", Reason.ALLOWED.value)]
    pairs += [
        (outcome(Decision.deny(reason)), reason.value)
        for reason in Reason
        if reason is not Reason.ALLOWED
    ]
    pairs += [("dropped", reason.value) for reason in DropReason]
    return pairs


class LaneCounts(Protocol):
    """What one admission lane shows: requests in a slot, waiting for one, refused so far."""

    busy: int
    waiting: int
    refused: int


class LaneCollector(Collector):
    """The admission lanes read at scrape time (no per-request cost); every lane at 0 until
    the worker exists."""

    def __init__(self) -> None:
        self.lanes: Callable[[], Mapping[Lane, LaneCounts]] = dict

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        lanes = self.lanes()
        busy = GaugeMetricFamily(
            "callout_lane_busy_requests", "Requests decided in a slot of the lane.", labels=["lane"]
        )
        waiting = GaugeMetricFamily(
            "callout_lane_waiting_requests", "Requests waiting for a slot.", labels=["lane"]
        )
        refused = CounterMetricFamily(
            "callout_lane_refused",
            "Requests the lane refused as overloaded (no decision possible before exp).",
            labels=["lane"],
        )
        for lane in Lane:
            counts = lanes.get(lane)
            busy.add_metric([lane.value], counts.busy if counts else 0)
            waiting.add_metric([lane.value], counts.waiting if counts else 0)
            refused.add_metric([lane.value], counts.refused if counts else 0)
        yield from (busy, waiting, refused)


class Metrics:
    """Every metric the service exports; methods are the only way code touches them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        reg = self.registry
        process_collector.ProcessCollector(registry=reg)
        platform_collector.PlatformCollector(registry=reg)
        gc_collector.GCCollector(registry=reg)
        # What every request updates: lock-free tallies, exported at scrape time.
        self.requests = CounterTally(
            "callout_auth_requests",
            "Authorization requests by outcome (allow/deny/error/dropped), reason and backend.",
            ["outcome", "reason", "backend"],
        )
        self.duration = HistogramTally(
            "callout_auth_request_duration_seconds",
            "Time from receiving a request to answering (or dropping) it.",
            ["outcome"],
            LATENCY_BUCKETS,
        )
        self.backend_duration = HistogramTally(
            "callout_backend_request_duration_seconds",
            "Time a credential backend took to answer.",
            ["backend", "operation"],
            LATENCY_BUCKETS,
        )
        self.dropped = CounterView(
            "callout_requests_dropped",
            "Requests that got no reply, by reason.",
            ["reason"],
            lambda: {
                (reason,): count
                for (kind, reason), count in self.outcomes(zeros=True).items()
                if kind == "dropped"
            },
        )
        self.cache_lookups = CounterTally(
            "callout_cache_lookups",
            "Decision/credential cache lookups by cache and result (hit/miss).",
            ["cache", "result"],
        )
        self._reloading: Sequence[ReloadsFiles] = ()
        self.file_reloads = CounterView(
            "callout_backend_file_reloads",
            "Reloads of a backend's own files (cert: CA bundles, CRLs) by result "
            "(success/failure: the last good set stayed).",
            ["backend", "result"],
            self._file_reloads,
        )
        self.server_versions = CounterTally(
            "callout_server_version_requests",
            "Verified requests by the asking server's version band (release line, or"
            " older/newer/unknown) and whether that version lacks an advisory's fix.",
            ["band", "advisories"],
        )
        self._kdf_count: Callable[[], int] = lambda: 0
        self.kdf = CounterView(
            "callout_kdf_verifications",
            "Password KDF verifications (argon2id, bcrypt) started, dummy ones included.",
            [],
            lambda: {(): self._kdf_count()},
        )
        reg.register(
            TallyCollector(
                [
                    self.requests,
                    self.duration,
                    self.backend_duration,
                    self.dropped,
                    self.cache_lookups,
                    self.file_reloads,
                    self.server_versions,
                    self.kdf,
                ]
            )
        )
        self.backend_errors = Counter(
            "callout_backend_errors",
            "Backend faults (the login failed closed).",
            ["backend", "error"],
            registry=reg,
        )
        self.inflight = Gauge(
            "callout_inflight_requests", "Requests being worked on.", registry=reg
        )
        self.reloads = Counter(
            "callout_policy_reloads",
            "Policy and key reloads by result (success/failure).",
            ["result"],
            registry=reg,
        )
        self.last_reload = Gauge(
            "callout_policy_last_reload_success_timestamp_seconds",
            "Unix time of the last successful policy load.",
            registry=reg,
        )
        self.policy_entries = Gauge(
            "callout_policy_entries",
            "Entries of the active policy by kind (users/groups/tokens).",
            ["kind"],
            registry=reg,
        )
        self.policy_info = Gauge(
            "callout_policy_info",
            "The active policy (always 1): digest is the sha256 of the policy tree.",
            ["digest"],
            registry=reg,
        )
        self.creds_expiry = Gauge(
            "callout_nats_creds_expiry_timestamp_seconds",
            "Unix time the service's own creds (nats.creds_file) expire; 0 if they never do "
            "or no creds file is used.",
            registry=reg,
        )
        self.nats_connected = Gauge(
            "callout_nats_connected", "1 while connected to NATS.", registry=reg
        )
        self.nats_reconnects = Counter(
            "callout_nats_reconnects", "Reconnections to NATS.", registry=reg
        )
        self.audit_dropped = Counter(
            "callout_audit_events_dropped",
            "Audit events not published to JetStream, by reason (buffer_full/publish_failed).",
            ["reason"],
            registry=reg,
        )
        self.audit_published = Counter(
            "callout_audit_events_published",
            "Audit events acknowledged by JetStream.",
            registry=reg,
        )
        self._lanes = LaneCollector()
        reg.register(self._lanes)
        build = Gauge(
            "callout_build_info",
            "Build information (always 1).",
            ["version", "python_version"],
            registry=reg,
        )
        build.labels(__version__, platform.python_version()).set(1)
        self._prime()

    def _prime(self) -> None:
        """Create every series alerts and the dashboard use, at 0."""
        for kind, reason in request_series():
            self.requests.values.setdefault((kind, reason, NO_BACKEND), 0.0)
        for kind in OUTCOMES:
            self.duration.prime(kind)
        for result in CACHE_RESULTS:
            self.cache_lookups.values.setdefault(("decision", result), 0.0)
        for result in RELOAD_RESULTS:
            self.reloads.labels(result)
        for reason in AUDIT_DROP_REASONS:
            self.audit_dropped.labels(reason)
        for kind in POLICY_KINDS:
            self.policy_entries.labels(kind)
        for band in BANDS:
            for state in ADVISORY_STATES:
                self.server_versions.values.setdefault((band, state), 0.0)

    def watch_creds(self, expires: Callable[[], int | None]) -> None:
        """Read the creds expiry at scrape time (the creds file is re-read on reconnect)."""
        self.creds_expiry.set_function(lambda: float(expires() or 0))

    def prime_backends(self, names: Iterable[str]) -> None:
        """Backend series at 0 for the configured chain (names come from the settings)."""
        for name in names:
            self.backend_duration.prime(name, "authenticate")
            for error in BACKEND_ERRORS:
                self.backend_errors.labels(name, error)

    def watch_file_reloads(self, backends: Sequence[ReloadsFiles]) -> None:
        """Read the file reloads of ``backends`` at scrape time (their series exist at 0)."""
        self._reloading = tuple(backends)

    def _file_reloads(self) -> dict[tuple[str, ...], float]:
        counts: dict[tuple[str, ...], float] = {}
        for backend in self._reloading:
            success, failure = ((backend.name, result) for result in RELOAD_RESULTS)
            counts[success] = counts.get(success, 0.0) + backend.reloaded
            counts[failure] = counts.get(failure, 0.0) + backend.reload_failures
        return counts

    def watch_inflight(self, count: Callable[[], int]) -> None:
        """Read the in-flight gauge from ``count`` at scrape time (no per-request cost)."""
        self.inflight.set_function(count)

    def watch_kdf(self, count: Callable[[], int]) -> None:
        """Read the KDF verification counter from ``count`` at scrape time."""
        self._kdf_count = count

    def watch_lanes(self, lanes: Callable[[], Mapping[Lane, LaneCounts]]) -> None:
        """Read the admission lanes' busy, waiting and refused counts from ``lanes`` at scrape
        time."""
        self._lanes.lanes = lanes

    def watch_nats(self, connected: Callable[[], bool]) -> None:
        self.nats_connected.set_function(lambda: 1.0 if connected() else 0.0)

    def request(self, outcome: str, reason: str, backend: str, seconds: float) -> None:
        self.requests.inc(outcome, reason, backend or NO_BACKEND)
        self.duration.observe(seconds, outcome)

    def server_version(self, band: str, *, advisories: bool) -> None:
        """One verified request from a server of ``band``; ``advisories``: lacking a fix."""
        self.server_versions.inc(band, ADVISORY_STATES[advisories])

    def request_dropped(self, reason: str, seconds: float) -> None:
        self.request("dropped", reason, NO_BACKEND, seconds)

    def outcomes(self, *, zeros: bool = False) -> dict[tuple[str, str], float]:
        """Requests so far by (outcome, reason), over every backend: the one count of them
        (micro STATS and the dropped counter read it too)."""
        totals: dict[tuple[str, str], float] = {}
        for (kind, reason, _), value in list(self.requests.values.items()):
            if value or zeros:
                totals[kind, reason] = totals.get((kind, reason), 0.0) + value
        return totals

    def processing(self) -> tuple[int, float]:
        """How many requests were handled (answered or dropped) and the seconds they took."""
        series = list(self.duration.series.values())
        return sum(sum(s.counts) for s in series), sum(s.total for s in series)

    def backend_call(self, backend: str, operation: str, seconds: float) -> None:
        self.backend_duration.observe(seconds, backend, operation)

    def backend_error(self, backend: str, error: str) -> None:
        self.backend_errors.labels(backend, error).inc()

    def cache_lookup(self, cache: str, *, hit: bool) -> None:
        self.cache_lookups.inc(cache, "hit" if hit else "miss")

    def policy_loaded(self, *, users: int, groups: int, tokens: int = 0, digest: str = "") -> None:
        """A successful load (start-up or reload): entry counts, digest and the timestamp."""
        self.last_reload.set(time.time())
        self.policy_entries.labels("users").set(users)
        self.policy_entries.labels("groups").set(groups)
        self.policy_entries.labels("tokens").set(tokens)
        if digest:
            self.policy_info.clear()  # one series: the policy this instance runs now
            self.policy_info.labels(digest).set(1)

    def reload(self, *, success: bool) -> None:
        self.reloads.labels("success" if success else "failure").inc()

    def reconnected(self) -> None:
        self.nats_reconnects.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
