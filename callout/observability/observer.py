"""What the worker reports after each request: metrics, the audit event, the micro stats.

The worker calls `ServiceObserver.decided` or `.dropped` once per request and knows nothing
about Prometheus or audit formats. The request counts live in one place, the `Metrics`
tallies: the micro totals (`stats`) are read from them, never counted beside them. Backend
latency and faults reach the metrics through `callout.backends.chain.BackendStats`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from callout.decision import Decision
from callout.observability.audit import AuditLog, decision_event, drop_event, outcome
from callout.observability.decided import DecidedRequest
from callout.observability.metrics import Metrics
from callout.protocol.claims import AuthRequest

_ERRORS = ("error", "dropped")  # what micro counts as errors


@dataclass(frozen=True, slots=True)
class RequestStats:
    """Totals for `$SRV.STATS` (nats micro): requests, errors, processing time."""

    requests: int
    errors: int
    processing_ns: int
    last_error: str
    started: float


class ServiceObserver:
    """Reports each outcome to the metrics and the audit log."""

    def __init__(self, *, metrics: Metrics | None = None, audit: AuditLog | None = None) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        self.audit = audit if audit is not None else AuditLog()
        self.started = time.time()
        self.last_error = ""

    def stats(self) -> RequestStats:
        """The micro totals, read from the metrics."""
        requests, seconds = self.metrics.processing()
        outcomes = self.metrics.outcomes()
        errors = sum(count for (kind, _), count in outcomes.items() if kind in _ERRORS)
        return RequestStats(
            requests=requests,
            errors=int(errors),
            processing_ns=int(seconds * 1e9),
            last_error=self.last_error,
            started=self.started,
        )

    def decided(
        self, opened: DecidedRequest, decision: Decision, *, seconds: float, replied: bool
    ) -> None:
        kind = outcome(decision)
        if kind == "error":
            self.last_error = decision.reason.value
        self.metrics.request(kind, decision.reason.value, decision.backend, seconds)
        self.audit.emit(
            decision_event(
                opened.request,
                decision,
                policy_digest=opened.runtime.policy.digest,
                seconds=seconds,
                replied=replied,
            )
        )

    def dropped(
        self,
        reason: str,
        detail: str,
        *,
        seconds: float,
        request: AuthRequest | None = None,
        principal: str = "",
        policy_digest: str = "",
    ) -> None:
        self.last_error = reason
        self.metrics.request_dropped(reason, seconds)
        self.audit.emit(
            drop_event(
                reason,
                detail,
                request=request,
                principal=principal,
                policy_digest=policy_digest,
                seconds=seconds,
            )
        )
