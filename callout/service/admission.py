"""Admission control: each request decided in its lane, or refused at once when it cannot be.

Work comes in two costs (`Lane`): cheap (nkey signatures, HMAC tokens, decision-cache hits,
JWTs with known keys: microseconds on the event loop) and expensive (an argon2/bcrypt verify,
a directory bind, a key fetch: milliseconds each, in a small pool); a third lane holds logins
that wait for the same verification already in flight (shared). Each lane has its own
slots and its own bounded queue, so a flood of expensive work never holds the slots cheap
work needs. Which lane a request takes is decided once, by the backend chain
(`callout.backends.base.lane_of`): here the lane is data.

A request enters the expensive lane only if it can be decided before its deadline (its
``exp``, less a margin to sign and publish): with ``b`` requests busy or waiting ahead of it,
``n`` slots and ``s`` the lane's measured service time (an exponentially weighted moving
average), it would be decided after ``ceil((b + 1 - n) / n) * s + s``. If that is too late,
or the lane's queue is full, it is refused at once with a signed deny (`Reason.OVERLOADED`),
rather than left to wait for an expiry that makes the client wait out the server's whole
timeout. The same check runs again when a slot frees: time spent in the queue may have used
up the budget. The cheap lane (CPU-bound: its time in a slot grows with how many run at
once) and the shared lane (waiting for a flight that was admitted already) are bounded by
their queues, and refuse only what has no time left when its slot comes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from callout.decision import Lane
from callout.settings import Settings

T = TypeVar("T")

# Time kept for signing, sealing and publishing the answer after the decision.
ANSWER_MARGIN = 0.05
# Service-time estimates before the first measurement (seconds): an argon2 verify with the
# OWASP parameters takes ~24 ms of CPU; cheap work well under a millisecond.
INITIAL_SERVICE = {Lane.CHEAP: 0.001, Lane.EXPENSIVE: 0.03, Lane.SHARED: 0.03}
# Lanes whose admission predicts from backlog and service time: a fixed pool of threads or
# connections, where both are meaningful. Cheap work shares one CPU with everything (its
# time in a slot says how many run at once, not what is left) and finishes fast; shared work
# only waits for a verification that was admitted already.
PREDICTED = frozenset({Lane.EXPENSIVE})
SMOOTHING = 0.2  # weight of the newest measurement in the moving average


def predicted_seconds(*, ahead: int, slots: int, service: float) -> float:
    """When a request arriving now would be decided: the rounds of ``service`` needed before
    one of ``slots`` frees for it (``ahead`` are busy or waiting), then its own."""
    rounds = math.ceil(max(0, ahead + 1 - slots) / slots)
    return (rounds + 1) * service


def smoothed(previous: float, measured: float) -> float:
    """The moving average after one more measurement."""
    return previous + SMOOTHING * (measured - previous)


def expensive_limits(settings: Settings, kdf_workers: int) -> LaneLimits:
    """The expensive lane from settings: ``service.expensive_concurrency``, by default one slot
    per KDF thread plus each LDAP backend's connection pool (binds wait on the network, not
    on the CPU)."""
    slots = settings.service.expensive_concurrency
    if slots is None:
        pools = sum(getattr(backend, "pool_size", 0) for backend in settings.backends)
        slots = kdf_workers + pools
    return LaneLimits(slots=slots, queue=settings.service.expensive_queue)


@dataclass(frozen=True, slots=True)
class LaneLimits:
    """``slots`` decided at once, at most ``queue`` waiting for a slot."""

    slots: int
    queue: int


class LaneState:
    """One lane: its slots, what is busy and waiting, and its measured service time."""

    def __init__(self, lane: Lane, limits: LaneLimits) -> None:
        if limits.slots < 1 or limits.queue < 0:
            raise ValueError("a lane needs at least one slot and a queue bound >= 0")
        self.lane = lane
        self.limits = limits
        self.predicted = lane in PREDICTED
        self.service = INITIAL_SERVICE[lane]
        self.busy = 0
        self.waiting = 0
        self.refused = 0
        self._slots = asyncio.Semaphore(limits.slots)

    def fits(self, now: float, deadline: float) -> bool:
        """Whether a request arriving at ``now`` can be decided before ``deadline``."""
        if self.waiting >= self.limits.queue and self.busy >= self.limits.slots:
            return False
        if not self.predicted:
            return now <= deadline
        ahead = self.busy + self.waiting
        at = now + predicted_seconds(ahead=ahead, slots=self.limits.slots, service=self.service)
        return at <= deadline

    async def acquire(self) -> None:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self._slots.release()


class Admission:
    """The lanes of one worker. ``run`` decides in a lane, or returns None: refused."""

    def __init__(
        self,
        limits: Mapping[Lane, LaneLimits],
        *,
        clock: Callable[[], float] | None = None,
        margin: float = ANSWER_MARGIN,
    ) -> None:
        self.lanes = {lane: LaneState(lane, limits[lane]) for lane in Lane}
        self.margin = margin
        self._clock = clock

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    async def run(self, lane: Lane, deadline: float, work: Callable[[], Awaitable[T]]) -> T | None:
        """``work()`` in a slot of ``lane`` if it can finish by ``deadline`` (event-loop
        time), else None at once (or as soon as a slot frees too late)."""
        state = self.lanes[lane]
        budget = deadline - self.margin
        if not state.fits(self._now(), budget):
            state.refused += 1
            return None
        await state.acquire()
        try:
            started = self._now()
            if started + (state.service if state.predicted else 0.0) > budget:
                state.refused += 1
                return None
            state.busy += 1
            try:
                return await work()
            finally:
                state.busy -= 1
                state.service = smoothed(state.service, self._now() - started)
        finally:
            state.release()
