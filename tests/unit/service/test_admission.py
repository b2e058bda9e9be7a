"""Admission arithmetic and lanes, with an injected clock: who is let in, who is refused."""

from __future__ import annotations

import asyncio

import pytest

from callout.decision import Lane
from callout.service.admission import (
    INITIAL_SERVICE,
    SMOOTHING,
    Admission,
    LaneLimits,
    predicted_seconds,
    smoothed,
)


@pytest.mark.parametrize(
    ("ahead", "slots", "rounds"),
    [(0, 1, 1), (0, 4, 1), (3, 4, 1), (4, 4, 2), (7, 4, 2), (8, 4, 3), (5, 1, 6)],
)
def test_a_request_is_decided_after_the_rounds_ahead_of_it(
    ahead: int, slots: int, rounds: int
) -> None:
    assert predicted_seconds(ahead=ahead, slots=slots, service=0.5) == rounds * 0.5


def test_the_service_time_follows_measurements() -> None:
    assert smoothed(1.0, 2.0) == pytest.approx(1.0 + SMOOTHING)
    value = 0.001
    for _ in range(100):
        value = smoothed(value, 0.030)
    assert value == pytest.approx(0.030)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _admission(clock: _Clock, *, slots: int = 2, queue: int = 100) -> Admission:
    return Admission(
        {
            Lane.CHEAP: LaneLimits(slots=8, queue=100),
            Lane.EXPENSIVE: LaneLimits(slots=slots, queue=queue),
            Lane.SHARED: LaneLimits(slots=100, queue=100),
        },
        clock=clock,
        margin=0.0,
    )


async def test_what_cannot_finish_before_its_deadline_is_refused_at_once() -> None:
    """Two slots at 0.5 s each and a deadline 2 s away: four rounds of two fit (8 requests);
    the ninth would be decided at 2.5 s and is refused without waiting."""
    clock = _Clock()
    admission = _admission(clock)
    admission.lanes[Lane.EXPENSIVE].service = 0.5
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "decided"

    deadline = clock.now + 2.0
    held = [asyncio.create_task(admission.run(Lane.EXPENSIVE, deadline, work)) for _ in range(8)]
    await asyncio.sleep(0)
    async with asyncio.timeout(5):  # a wrong admission would wait for the release: fail, not hang
        refused = await admission.run(Lane.EXPENSIVE, deadline, work)
    assert refused is None
    assert admission.lanes[Lane.EXPENSIVE].refused == 1
    release.set()
    assert await asyncio.gather(*held) == ["decided"] * 8


async def test_a_busy_expensive_lane_does_not_hold_cheap_work() -> None:
    """Cheap requests have their own slots: a full expensive lane changes nothing for them."""
    clock = _Clock()
    admission = _admission(clock, slots=1, queue=1)
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    async def fast() -> str:
        return "fast"

    deadline = clock.now + 2.0
    busy = [asyncio.create_task(admission.run(Lane.EXPENSIVE, deadline, slow)) for _ in range(2)]
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        assert await admission.run(Lane.EXPENSIVE, deadline, slow) is None  # queue bound: 1
        assert await admission.run(Lane.CHEAP, deadline, fast) == "fast"
    release.set()
    assert await asyncio.gather(*busy) == ["slow", "slow"]


async def test_time_spent_waiting_is_checked_again_when_a_slot_frees() -> None:
    """Admitted on a stale estimate, the request finds its budget used up once it gets a slot:
    refused then, not worked on."""
    clock = _Clock()
    admission = _admission(clock, slots=1)
    release = asyncio.Event()
    calls: list[str] = []

    async def work() -> str:
        calls.append("work")
        await release.wait()
        return "done"

    first = asyncio.create_task(admission.run(Lane.EXPENSIVE, clock.now + 2.0, work))
    await asyncio.sleep(0)
    second = asyncio.create_task(admission.run(Lane.EXPENSIVE, clock.now + 2.0, work))
    await asyncio.sleep(0)
    clock.now += 1.99  # the first one took nearly the whole budget
    release.set()
    assert await first == "done"
    assert await second is None
    assert calls == ["work"]


async def test_the_lane_learns_its_service_time() -> None:
    clock = _Clock()
    admission = _admission(clock)
    state = admission.lanes[Lane.EXPENSIVE]
    assert state.service == INITIAL_SERVICE[Lane.EXPENSIVE]

    async def work() -> None:
        clock.now += 0.2

    await admission.run(Lane.EXPENSIVE, clock.now + 10, work)
    assert state.service == pytest.approx(smoothed(INITIAL_SERVICE[Lane.EXPENSIVE], 0.2))
    assert (state.busy, state.waiting) == (0, 0)


async def test_a_failing_work_frees_its_slot_and_is_measured() -> None:
    clock = _Clock()
    admission = _admission(clock, slots=1)

    async def boom() -> None:
        clock.now += 0.1
        raise RuntimeError("backend bug")

    with pytest.raises(RuntimeError):
        await admission.run(Lane.EXPENSIVE, clock.now + 10, boom)
    state = admission.lanes[Lane.EXPENSIVE]
    assert (state.busy, state.waiting) == (0, 0)
    assert state.service > INITIAL_SERVICE[Lane.EXPENSIVE]

    async def fine() -> str:
        return "ok"

    assert await admission.run(Lane.EXPENSIVE, clock.now + 10, fine) == "ok"


async def test_cheap_work_is_not_refused_on_an_estimate_only_when_out_of_time() -> None:
    """The cheap lane shares the CPU: its time in a slot is no forecast. It admits while there
    is time left and refuses only what got its slot too late."""
    clock = _Clock()
    admission = _admission(clock)
    admission.lanes[Lane.CHEAP].service = 60.0  # a wild estimate changes nothing

    async def fast() -> str:
        return "fast"

    assert await admission.run(Lane.CHEAP, clock.now + 0.5, fast) == "fast"
    assert await admission.run(Lane.CHEAP, clock.now - 0.1, fast) is None
