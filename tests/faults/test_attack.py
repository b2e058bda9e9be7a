"""The attack scenario of `callout bench` at small scale: every phase runs, every attempt is
classified, no guess gets in, and the service's memory is read. Outcomes, never timings (the
rates are the benchmark's to report)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callout.bench.attack import HONEST_KINDS, SOURCES, AttackPlan, run_attack
from callout.bench.outcomes import Outcome, classify
from callout.bench.rawnats import Attempt

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPRAY = 200


async def test_attackers_and_a_spray_beside_honest_clients(tmp_path: Path) -> None:
    """40 wrong-password attackers from 8 source addresses, then 200 unknown nkeys, while
    honest token, nkey and cached-password clients log in throughout."""
    plan = AttackPlan(attackers=40, honest=1, duration=2.0, spray=SPRAY, spray_concurrency=32)
    result = await run_attack(tmp_path, plan)
    assert set(result.honest) == {"unloaded", "attack", "spray"}
    for phase, kinds in result.honest.items():
        assert set(kinds) == set(HONEST_KINDS)
        for kind, tally in kinds.items():
            assert tally.outcomes[Outcome.ALLOWED] > 0, (phase, kind, tally.as_dict())
    for name, tally in (("attackers", result.attackers), ("spray", result.spray)):
        assert tally.attempts > 0, name
        assert tally.outcomes[Outcome.ALLOWED] == 0, (name, tally.as_dict())
        refused = tally.outcomes[Outcome.DENIED] + tally.outcomes[Outcome.DROPPED]
        assert refused > 0, (name, tally.as_dict())
    assert result.spray.attempts == SPRAY  # every distinct key tried exactly once
    assert result.rss["peak"] >= result.rss["peak_attack"] > 0
    assert result.rss["after_spray"] > 0
    assert len(SOURCES) == 8
    assert SOURCES[0] == "127.0.0.2"


@pytest.mark.parametrize(
    ("attempt", "outcome"),
    [
        (Attempt(True, 0.01), Outcome.ALLOWED),
        (Attempt(False, 0.01, "-ERR 'Authorization Violation'"), Outcome.DENIED),
        (Attempt(False, 2.0, "-ERR 'Authorization Violation'"), Outcome.DROPPED),
        (Attempt(False, 5.0, "TimeoutError"), Outcome.TIMED_OUT),
        (Attempt(False, 0.0, "connect: ConnectionRefusedError"), Outcome.CONNECT_FAILED),
        (Attempt(False, 0.1, "connection closed"), Outcome.OTHER),
    ],
)
def test_attempts_are_classified_by_answer_and_wait(attempt: Attempt, outcome: Outcome) -> None:
    """A refusal after the server's auth timeout means the service never answered."""
    assert classify(attempt) is outcome
