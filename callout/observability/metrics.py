"""Prometheus metrics of one service instance, in a registry of its own.

Names and labels follow operations.md §2.3: the ``callout_`` prefix, base units in the name,
counters named without ``_total`` (the client adds it), no high-cardinality labels (never
user names, addresses or token ids). Each `App` owns one `Metrics`, so many apps can live in
one process (tests) without colliding in the global registry.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

from callout import __version__
from callout.observability.tallies import CounterTally, HistogramTally, TallyCollector

# A 2 s server budget: fine resolution where logins should be, nothing past the budget.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

NO_BACKEND = "none"


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
        self.dropped = CounterTally(
            "callout_requests_dropped", "Requests that got no reply, by reason.", ["reason"]
        )
        self.cache_lookups = CounterTally(
            "callout_cache_lookups",
            "Decision/credential cache lookups by cache and result (hit/miss).",
            ["cache", "result"],
        )
        reg.register(
            TallyCollector(
                [
                    self.requests,
                    self.duration,
                    self.backend_duration,
                    self.dropped,
                    self.cache_lookups,
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
            "Entries of the active policy by kind (users/groups).",
            ["kind"],
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
        build = Gauge(
            "callout_build_info",
            "Build information (always 1).",
            ["version", "python_version"],
            registry=reg,
        )
        build.labels(__version__, platform.python_version()).set(1)

    def watch_inflight(self, count: Callable[[], int]) -> None:
        """Read the in-flight gauge from ``count`` at scrape time (no per-request cost)."""
        self.inflight.set_function(count)

    def watch_nats(self, connected: Callable[[], bool]) -> None:
        self.nats_connected.set_function(lambda: 1.0 if connected() else 0.0)

    def request(self, outcome: str, reason: str, backend: str, seconds: float) -> None:
        self.requests.inc(outcome, reason, backend or NO_BACKEND)
        self.duration.observe(seconds, outcome)

    def request_dropped(self, reason: str, seconds: float) -> None:
        self.dropped.inc(reason)
        self.request("dropped", reason, NO_BACKEND, seconds)

    def backend_call(self, backend: str, operation: str, seconds: float) -> None:
        self.backend_duration.observe(seconds, backend, operation)

    def backend_error(self, backend: str, error: str) -> None:
        self.backend_errors.labels(backend, error).inc()

    def cache_lookup(self, cache: str, *, hit: bool) -> None:
        self.cache_lookups.inc(cache, "hit" if hit else "miss")

    def policy_loaded(self, *, users: int, groups: int) -> None:
        """A successful load (start-up or reload): entry counts and the timestamp."""
        self.last_reload.set(time.time())
        self.policy_entries.labels("users").set(users)
        self.policy_entries.labels("groups").set(groups)

    def reload(self, *, success: bool) -> None:
        self.reloads.labels("success" if success else "failure").inc()

    def reconnected(self) -> None:
        self.nats_reconnects.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
