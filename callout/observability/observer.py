"""What the worker reports after each request: metrics, the audit event, the micro stats.

The worker calls `ServiceObserver.decided` or `.dropped` once per request and knows nothing
about Prometheus or audit formats. Metrics are optional (`None` in tests and tools). Backend
latency and faults reach the metrics through `callout.backends.chain.BackendStats`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callout.decision import Decision
from callout.observability.audit import AuditLog, decision_event, drop_event, outcome
from callout.observability.decided import DecidedRequest
from callout.protocol.claims import AuthRequest

if TYPE_CHECKING:
    from callout.observability.metrics import Metrics


@dataclass(slots=True)
class RequestStats:
    """Totals for `$SRV.STATS` (nats micro): requests, errors, processing time."""

    requests: int = 0
    errors: int = 0
    processing_ns: int = 0
    last_error: str = ""
    started: float = 0.0


class ServiceObserver:
    """Reports each outcome to metrics and the audit log, and keeps the micro totals."""

    def __init__(self, *, metrics: Metrics | None = None, audit: AuditLog | None = None) -> None:
        self.metrics = metrics
        self.audit = audit if audit is not None else AuditLog()
        self.stats = RequestStats(started=time.time())

    def decided(
        self, opened: DecidedRequest, decision: Decision, *, seconds: float, replied: bool
    ) -> None:
        kind = outcome(decision)
        self._count(seconds, error=decision.reason.value if kind == "error" else "")
        if self.metrics is not None:
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
        self._count(seconds, error=reason)
        if self.metrics is not None:
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

    def _count(self, seconds: float, *, error: str) -> None:
        stats = self.stats
        stats.requests += 1
        stats.processing_ns += int(seconds * 1e9)
        if error:
            stats.errors += 1
            stats.last_error = error
