"""How a login attempt ended, as the client saw it, and the tally of one kind of client."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from callout.bench.rawnats import Attempt

AUTH_TIMEOUT = 2.0  # nats-server's auth_callout timeout: a request the service never answers
_DROPPED_FRACTION = 0.9


class Outcome(StrEnum):
    """How one login attempt ended, as the client saw it."""

    ALLOWED = "allowed"
    DENIED = "denied"  # refused before the server's auth timeout: the service answered
    DROPPED = "dropped"  # refused after the server's auth timeout: the service never answered
    TIMED_OUT = "timed_out"  # no answer at all within the client's own limit
    CONNECT_FAILED = "connect_failed"
    OTHER = "other"


def classify(attempt: Attempt) -> Outcome:
    if attempt.ok:
        return Outcome.ALLOWED
    if attempt.error.startswith("connect:"):
        return Outcome.CONNECT_FAILED
    if attempt.error == "TimeoutError":
        return Outcome.TIMED_OUT
    if "Authorization Violation" in attempt.error or "Authentication Timeout" in attempt.error:
        late = attempt.latency >= AUTH_TIMEOUT * _DROPPED_FRACTION
        return Outcome.DROPPED if late else Outcome.DENIED
    return Outcome.OTHER


@dataclass
class Tally:
    """Outcomes of one kind of client in one phase, and the latencies of its successes."""

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    others: Counter[str] = field(default_factory=Counter)  # the errors classified `OTHER`
    elapsed: float = 0.0

    def add(self, attempt: Attempt) -> None:
        outcome = classify(attempt)
        self.outcomes[outcome] += 1
        if outcome is Outcome.ALLOWED:
            self.latencies.append(attempt.latency)
        elif outcome is Outcome.OTHER:
            self.others[attempt.error[:80]] += 1

    @property
    def attempts(self) -> int:
        return sum(self.outcomes.values())

    @property
    def rate(self) -> float:
        """Successful logins per second."""
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    @property
    def timeouts(self) -> int:
        """Logins that waited out a timeout: the server's (dropped) or the client's."""
        return self.outcomes[Outcome.DROPPED] + self.outcomes[Outcome.TIMED_OUT]

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "attempts": self.attempts,
            "ok": len(self.latencies),
            "outcomes": {outcome.value: n for outcome, n in sorted(self.outcomes.items())},
            "ok_per_s": round(self.rate, 1),
            "p99_ms": round(1000 * self.p99(), 1),
            "timeouts": self.timeouts,
            "other_errors": dict(self.others),
            "seconds": round(self.elapsed, 2),
        }
