"""`SharedCounters`: the throttle's leaky buckets as all replicas count them together.

Each bucket key (``<table>.<hex digest>``; the digest is keyed with ``state.key_file``, so no
name, address or token is stored) holds the wall-clock time its leaky bucket is empty again.
A replica counts locally first (the login never waits for KV) and queues the change; the
writer adds or gives back ``delta`` attempts with compare-and-set on the key's revision, so
concurrent counts of several replicas all land. Changes to one key made before the writer
gets to them are merged into one write: an attempt counted and given back (a success) before
then costs no write at all. The watch brings every replica's writes into `values`, and the
throttle checks the larger of its own count and the shared one.

Bounded: at most ``max_pending`` keys wait to be written (more are dropped and counted: the
local count still holds) and at most ``max_mirrored`` keys are mirrored (drained ones leave
first). The bucket's max age is the throttle window: a bucket never holds an attempt longer.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from nats.js.errors import (
    APIError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

from callout.state.health import StateHealth
from callout.state.mirror import write_batches

_CAS_TRIES = 8
# JetStream's "wrong last sequence" error codes: nats-py maps them to KeyWrongLastSequenceError
# for `update`, but a `delete` with ``last`` raises the plain APIError (BadRequestError)
_WRONG_LAST = (10071, 10164)
_SCAN = 16


class ContendedError(Exception):
    """Other replicas wrote a key first every time this one tried: the change is written
    with the next batch (merged with later counts), not a reason to leave KV."""


@dataclass(slots=True)
class _Change:
    delta: int = 0  # attempts added (negative: given back)
    cleared: bool = False  # the key was cleared first (a success)
    interval: float = 0.0
    now: float = 0.0
    # attempts waiting to learn what the bucket holds with them counted (seconds until empty;
    # None: not known), in the order they were added
    waiters: list[asyncio.Future[float | None]] = field(default_factory=list)

    def tell(self, empty_at: float | None) -> None:
        """The write is done: waiter i (of n) was the (n - i)th last attempt in it."""
        count = len(self.waiters)
        for position, waiter in enumerate(self.waiters):
            if not waiter.done():
                ahead = (count - 1 - position) * self.interval
                waiter.set_result(None if empty_at is None else empty_at - ahead - self.now)
        self.waiters.clear()


class SharedCounters:
    def __init__(
        self,
        bucket: str,
        *,
        window: float,
        health: StateHealth,
        max_pending: int = 10_000,
        max_mirrored: int = 60_000,
    ) -> None:
        self.bucket = bucket
        self.ttl: float | None = window
        self.health = health
        self.max_pending = max_pending
        self.max_mirrored = max_mirrored
        self.wakeup = asyncio.Event()
        # key -> (empty_at or None once deleted, revision), oldest change first
        self.values: dict[str, tuple[float | None, int]] = {}
        self.pending: dict[str, _Change] = {}

    def value(self, key: str) -> float | None:
        """When ``key``'s bucket is empty again as all replicas counted it (None: unknown)."""
        known = self.values.get(key)
        return None if known is None else known[0]

    def changed(
        self, key: str, delta: int, interval: float, now: float, *, confirm: bool = False
    ) -> asyncio.Future[float | None] | None:
        """Count ``delta`` attempts (negative: give back) for ``key``, to be written. With
        ``confirm`` (while KV is in use): a future of the seconds until ``key``'s bucket is
        empty with this attempt counted by all replicas, once written."""
        change = self._pending(key)
        if change is None:
            return None
        change.delta += delta
        change.interval = interval
        change.now = now
        if not confirm or not self.health.up or delta <= 0:
            return None
        waiter: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        change.waiters.append(waiter)
        return waiter

    def cleared(self, key: str, now: float) -> None:
        """``key``'s bucket is emptied (a success)."""
        change = self._pending(key)
        if change is not None:
            change.cleared, change.delta, change.now = True, 0, now

    def _pending(self, key: str) -> _Change | None:
        change = self.pending.get(key)
        if change is None:
            if len(self.pending) >= self.max_pending:
                self.health.dropped.inc()
                return None
            change = self.pending[key] = _Change()
        self.wakeup.set()
        return change

    def apply(self, key: str, value: bytes | None, revision: int) -> None:
        """A watched entry. One older than what a write or a read already told us is stale:
        taking its revision would make every compare-and-set on the key fail again."""
        known = self.values.get(key)
        if known is not None and known[1] > revision:
            return
        self._store(key, value, revision)

    def _store(self, key: str, value: bytes | None, revision: int) -> None:
        try:
            empty_at = None if value is None else float(value)
        except ValueError:
            empty_at = None  # not ours: ignored
        self.values.pop(key, None)
        self.values[key] = (empty_at, revision)
        if len(self.values) > self.max_mirrored:
            self._forget(time.time())

    def _forget(self, now: float) -> None:
        """Drop a drained entry among the oldest few, else the oldest."""
        oldest = itertools.islice(self.values.items(), _SCAN)
        victim = next((k for k, (at, _) in oldest if at is None or at <= now), None)
        del self.values[victim if victim is not None else next(iter(self.values))]

    async def opened(self, kv: KeyValue) -> None:
        """Nothing to catch up: counts made on local state stay local (they drain anyway)."""

    async def flush(self, kv: KeyValue, budget: float) -> None:
        batch, self.pending = self.pending, {}

        async def write(key: str, change: _Change) -> float | None:
            try:
                return await self._write(kv, key, change, budget)
            except ContendedError:
                # not a KV failure: this attempt goes by the local count, the change by the
                # next write (merged with what was counted meanwhile)
                self._merge_back(key, change)
                return None

        def settled(change: _Change, result: object) -> None:
            change.tell(result if isinstance(result, float) else None)

        await write_batches(batch, write, self.pending, settled)

    def _merge_back(self, key: str, older: _Change) -> None:
        """Queue ``older`` (not written) again, before what was counted since."""
        self.health.contended.inc()
        newer = self.pending.get(key)
        if newer is None:
            self.pending[key] = _Change(older.delta, older.cleared, older.interval, older.now)
            self.wakeup.set()
        elif not newer.cleared:  # a newer clear makes the older change moot
            newer.delta += older.delta
            newer.cleared = older.cleared

    async def _write(self, kv: KeyValue, key: str, change: _Change, budget: float) -> float | None:
        """Write one key's merged change; the time its bucket is empty after it, if known."""
        if change.cleared:
            await asyncio.wait_for(kv.delete(key), budget)
            if change.delta <= 0:
                return None
        for _ in range(_CAS_TRIES):
            current, revision = self.values.get(key, (None, 0))
            if change.cleared:
                current = None
            if change.delta > 0:
                empty_at = max(current or change.now, change.now) + change.delta * change.interval
            elif change.delta < 0 and current is not None:
                empty_at = current + change.delta * change.interval
            else:
                return current
            try:
                if empty_at <= change.now:
                    await asyncio.wait_for(kv.delete(key, last=revision), budget)
                    return None
                written = await asyncio.wait_for(
                    kv.update(key, repr(empty_at).encode(), last=revision), budget
                )
            except KeyWrongLastSequenceError:
                await self._refresh(kv, key, budget)  # another replica wrote first
                continue
            except APIError as error:
                if error.err_code not in _WRONG_LAST:
                    raise
                await self._refresh(kv, key, budget)  # a conditional delete lost the race
                continue
            self.apply(key, repr(empty_at).encode(), written)
            return empty_at
        change.cleared = False  # the delete is done; the count is what stays to write
        raise ContendedError(f"{_CAS_TRIES} compare-and-set conflicts in a row on one key")

    async def _refresh(self, kv: KeyValue, key: str, budget: float) -> None:
        try:
            entry = await asyncio.wait_for(kv.get(key), budget)
        except KeyDeletedError as deleted:
            revision = deleted.entry.revision if deleted.entry is not None else 0
            self._store(key, None, revision or 0)
            return
        except KeyNotFoundError:
            self._store(key, None, 0)  # expired: the next write must create it
            return
        self._store(key, entry.value, entry.revision or 0)
