"""What shared state adds to a login's request path (pytest-benchmark): the throttle's check
and count, with and without shared counters. The KV writes themselves run in the background
(never awaited by a login); their end-to-end cost is measured by
`callout bench --replicas N` (README "Running several replicas")."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from callout.decision import Reason
from callout.service.throttle import Attempt, Throttle
from callout.state.counters import SharedCounters
from callout.state.health import StateHealth

pytestmark = pytest.mark.benchmark(group="shared state", min_rounds=200, max_time=0.3)


def _throttle(shared: bool) -> Throttle:
    counters = SharedCounters("b", window=60.0, health=StateHealth()) if shared else None
    return Throttle(
        window=60.0,
        max_per_principal=10**9,
        max_per_ip=10**9,
        max_per_principal_unfamiliar=10**9,
        digest_key=b"k" * 32,
        shared=counters,
    )


@pytest.mark.parametrize("shared", [False, True], ids=["local", "shared"])
def test_a_failed_expensive_login_through_the_throttle(benchmark: Any, shared: bool) -> None:
    """Counted at its start, kept as a guess: the case that writes to KV."""
    throttle = _throttle(shared)
    names = itertools.count()

    def login() -> None:
        attempt = throttle.begin(f"user:u{next(names)}", "10.0.0.1", now=time.time())
        assert isinstance(attempt, Attempt)
        throttle.finish(attempt, Reason.BAD_CREDENTIALS, now=time.time())
        if throttle.pairs.shared is not None:
            throttle.pairs.shared.pending.clear()  # the writer's part, not the request's

    benchmark(login)
