"""Whether the shared state is in use (KV reachable) or each replica is on its local state.

One log line per change, a gauge, a counter of failed operations, and the detail `/readyz`
shows. Being on local state does not make the replica unready: logins keep working.
"""

from __future__ import annotations

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

log = structlog.get_logger("callout.state")

OPERATIONS = ("open", "watch", "write", "probe")


class StateHealth:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry or CollectorRegistry()
        self.gauge = Gauge(
            "callout_shared_state_up",
            "1 while the shared state (JetStream KV) is in use, 0 while on local state.",
            registry=reg,
        )
        self.failures = Counter(
            "callout_shared_state_failures",
            "Shared-state operations that failed or timed out, by operation.",
            ["operation"],
            registry=reg,
        )
        self.dropped = Counter(
            "callout_shared_state_dropped_writes",
            "Changes not written to KV because the queue of pending writes was full.",
            registry=reg,
        )
        self.contended = Counter(
            "callout_shared_state_contended_writes",
            "Throttle counts another replica wrote first at every try: left to the local "
            "count for that login and written with the next batch.",
            registry=reg,
        )
        for operation in OPERATIONS:
            self.failures.labels(operation)
        self.up = False
        self.reason = "not started"

    def failed(self, operation: str, error: BaseException | str) -> None:
        """An operation failed: count it, and go to local state (logged once)."""
        self.failures.labels(operation).inc()
        why = error if isinstance(error, str) else type(error).__name__
        if self.up or self.reason == "not started":
            log.warning("shared_state_unavailable", operation=operation, error=why)
        self.up = False
        self.reason = f"{operation}: {why}"
        self.gauge.set(0)

    def recovered(self) -> None:
        if not self.up:
            log.info("shared_state_available")
        self.up = True
        self.reason = ""
        self.gauge.set(1)

    def detail(self) -> str:
        """The readiness detail: ``shared`` or ``local (why)``."""
        return "shared" if self.up else f"local ({self.reason})"
