"""The session metrics, registered on the service's own registry (`Metrics.registry`).

Every labelled series exists at 0 from start-up, like the service's other metrics.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

KICK_RESULTS = ("kicked", "failed", "reported")


class SessionMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry or CollectorRegistry()
        self.live = Gauge(
            "callout_sessions", "Sessions in the registry (grants not yet ended).", registry=reg
        )
        self.evicted = Counter(
            "callout_sessions_evicted",
            "Sessions forgotten because the registry was full (no longer revocable).",
            registry=reg,
        )
        self.revocations = Counter(
            "callout_session_revocations",
            "Sessions a reload or an operator ended, by result (kicked/failed/reported).",
            ["result"],
            registry=reg,
        )
        self.held_back = Counter(
            "callout_session_revocations_held_back",
            "Revocations not done because a reload would have passed the cap.",
            registry=reg,
        )
        self.rejections = Counter(
            "callout_server_rejections",
            "Grants we issued that nats-server refused, by the server's reason.",
            ["reason"],
            registry=reg,
        )
        for result in KICK_RESULTS:
            self.revocations.labels(result)

    def watch(self, count: Callable[[], int]) -> None:
        self.live.set_function(count)
