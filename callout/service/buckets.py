"""The bounded tables of the throttle (`callout.service.throttle`): leaky buckets per key and
the addresses a principal is familiar at.

Each table holds at most ``max_tracked`` entries (`MEMORY_PER_ENTRY` bytes each), kept in
order of their last attempt; idle entries leave as new keys arrive, a blocked entry never
does (the new key is refused instead: fail closed). Pure: the caller passes ``now``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict

from callout.state.counters import SharedCounters

# Bytes per table entry (16-byte digest key, float, OrderedDict slot and link), measured with
# tracemalloc on CPython 3.11 at 190-260 depending on how full the dict is: the throttle's
# ceiling is (4 x max_tracked + its failing addresses, at most FAILING_TRACKED) x this.
MEMORY_PER_ENTRY = 300
_SCAN = 16  # entries looked at for one that is not blocked
_IDLE_LOOKAHEAD = 4  # ... and for an idle one, once a candidate is found
EPSILON = 1e-9
# a count written to the shared state: (key, value, the future its confirmation resolves)
Confirmation = tuple[str, float, "asyncio.Future[float | None]"]


class Buckets:
    """Leaky buckets per key: ``limit`` attempts, draining one per ``window / limit`` seconds.

    The value kept per key is the time its bucket is empty again. With ``shared`` (several
    replicas, README "Running several replicas") every count is also written there under
    ``<name>.<hex key>``, and a key's value is the larger of the local and the shared one."""

    def __init__(
        self,
        *,
        window: float,
        limit: int,
        max_tracked: int,
        name: str = "",
        shared: SharedCounters | None = None,
    ) -> None:
        if window <= 0 or limit < 1 or max_tracked < 1:
            raise ValueError("window > 0, limit >= 1 and max_tracked >= 1 are required")
        self.name = name
        self.shared = shared
        self.window = window
        self.limit = limit
        self.max_tracked = max_tracked
        self.interval = window / limit
        self.headroom = window - self.interval + EPSILON  # full: empty_at - now above this
        # OrderedDict, not dict: dropping the oldest of a plain dict leaves holes at its front
        # that every later look at the oldest walks over again.
        self.empty_at: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self.empty_at)

    def value(self, key: bytes) -> float | None:
        """When ``key``'s bucket is empty again (None: not tracked)."""
        own = self.empty_at.get(key)
        if self.shared is None:
            return own
        shared = self.shared.value(self._shared_key(key))
        if shared is None or (own is not None and own >= shared):
            return own
        return shared

    def _shared_key(self, key: bytes) -> str:
        return f"{self.name}.{key.hex()}"

    def level(self, key: bytes, now: float) -> float:
        """Attempts still in the bucket (fractional while it drains)."""
        empty_at = self.value(key)
        return 0.0 if empty_at is None else max(0.0, empty_at - now) / self.interval

    def full(self, key: bytes, now: float) -> bool:
        empty_at = self.value(key)
        return empty_at is not None and empty_at - now > self.headroom

    def add(self, key: bytes, now: float, confirm: list[Confirmation] | None = None) -> bool:
        """Count one attempt; False (nothing counted) when the table has no room for a new key.
        With ``confirm``, the shared count's confirmation is appended to it."""
        entries = self.empty_at
        empty_at = entries.get(key)
        if empty_at is None:
            self._sweep(now, _SCAN)
            if len(entries) >= self.max_tracked and not self._evict(now):
                return False
            entries[key] = now + self.interval  # a new key is the newest already
        else:
            entries[key] = max(empty_at, now) + self.interval
            entries.move_to_end(key)  # now the newest
        if self.shared is not None:
            waiter = self.shared.changed(
                self._shared_key(key), 1, self.interval, now, confirm=confirm is not None
            )
            if waiter is not None and confirm is not None:
                confirm.append((self.name, self.window, waiter))
        return True

    def has_room(self, key: bytes, now: float) -> bool:
        """Whether `add` could count an attempt for ``key`` now (changes nothing)."""
        entries = self.empty_at
        if key in entries or len(entries) < self.max_tracked:
            return True
        return entries[next(iter(entries))] <= now or self._victim(now) is not None

    def refund(self, key: bytes, now: float) -> None:
        """Give one attempt back (it was not a guess)."""
        empty_at = self.empty_at.get(key)
        if empty_at is None:
            return
        empty_at -= self.interval
        if empty_at <= now:
            del self.empty_at[key]
        else:
            self.empty_at[key] = empty_at
        if self.shared is not None:
            self.shared.changed(self._shared_key(key), -1, self.interval, now)

    def clear(self, key: bytes, now: float) -> None:
        had = self.empty_at.pop(key, None)
        if self.shared is not None:
            shared_key = self._shared_key(key)
            if had is not None or self.shared.value(shared_key) is not None:
                self.shared.cleared(shared_key, now)

    def _sweep(self, now: float, most: int) -> None:
        """Drop up to ``most`` of the oldest entries while they are drained (idle)."""
        entries = self.empty_at
        for _ in range(most):
            if not entries:
                return
            oldest = next(iter(entries))
            if entries[oldest] > now:
                return
            del entries[oldest]

    def _evict(self, now: float) -> bool:
        # Untouched for a window means drained: the oldest entries go first, all of them.
        self._sweep(now, len(self.empty_at))
        if len(self.empty_at) < self.max_tracked:
            return True
        victim = self._victim(now)
        if victim is None:
            return False
        del self.empty_at[victim]
        return True

    def _victim(self, now: float) -> bytes | None:
        """The entry to drop for a new one: an idle one, else the oldest not blocked, among
        the oldest few; None when those are all blocked."""
        below_limit = now + self.headroom
        victim = None
        for position, (key, empty_at) in enumerate(itertools.islice(self.empty_at.items(), _SCAN)):
            if empty_at <= now:  # drained: idle
                return key
            if victim is None and empty_at <= below_limit:  # the oldest not blocked
                victim = key
            if victim is not None and position >= _IDLE_LOOKAHEAD:
                break
        return victim


class Familiar:
    """Keys seen recently, each remembered for ``remember``: (principal, address) pairs with a
    success (familiarity), addresses with a failure; oldest forgotten first when full."""

    def __init__(self, *, remember: float, max_tracked: int) -> None:
        self.remember = remember
        self.max_tracked = max_tracked
        self.until: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self.until)

    def add(self, key: bytes, now: float) -> None:
        self.until.pop(key, None)
        while self.until and (
            len(self.until) >= self.max_tracked or next(iter(self.until.values())) <= now
        ):
            self.until.popitem(last=False)  # the oldest: full, or forgotten already
        self.until[key] = now + self.remember

    def __call__(self, key: bytes, now: float) -> bool:
        until = self.until.get(key)
        if until is None:
            return False
        if until <= now:
            del self.until[key]
            return False
        return True


# (table name, window, future of the seconds its bucket holds with the attempt counted by
# every replica): a shared count to wait for (`Throttle.confirmed`)
