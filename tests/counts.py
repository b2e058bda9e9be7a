"""Request counts as the service exports them, read from its Prometheus registry.

The service counts each request once, in its metrics; tests read those, never a counter
kept for them.
"""

from __future__ import annotations

from collections import Counter

from callout.decision import DropReason, Reason
from callout.observability.metrics import Metrics


def _by_reason(metrics: Metrics, *, dropped: bool) -> Counter[str]:
    counts: Counter[str] = Counter()
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name != "callout_auth_requests_total" or not sample.value:
                continue
            if (sample.labels["outcome"] == "dropped") is dropped:
                counts[sample.labels["reason"]] += int(sample.value)
    return counts


def decisions(metrics: Metrics) -> Counter[Reason]:
    """Answered (or deliberately unanswered) decisions so far, by reason."""
    return Counter({Reason(r): n for r, n in _by_reason(metrics, dropped=False).items()})


def drops(metrics: Metrics) -> Counter[DropReason]:
    """Requests dropped so far, by reason."""
    return Counter({DropReason(r): n for r, n in _by_reason(metrics, dropped=True).items()})


def audit_published(metrics: Metrics) -> int:
    """Audit events JetStream acknowledged."""
    value = metrics.registry.get_sample_value("callout_audit_events_published_total")
    return int(value or 0)
