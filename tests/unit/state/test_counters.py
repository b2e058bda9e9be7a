"""The throttle over shared counters: what another replica counted limits this one, a local
count is queued for writing (merged per key, bounded), and a mirror never grows past its
bound. Pure: the watch is replaced by calls to `apply` (the port boundary)."""

from __future__ import annotations

import hashlib
import time
from types import SimpleNamespace

from nats.js.errors import BadRequestError, KeyWrongLastSequenceError
from prometheus_client import CollectorRegistry

from callout.decision import Reason
from callout.service.throttle import Attempt, Throttle
from callout.state.counters import SharedCounters
from callout.state.health import StateHealth

KEY = b"k" * 32
NOW = 1_000_000.0


def _counters(registry: CollectorRegistry | None = None, **bounds: int) -> SharedCounters:
    health = StateHealth(registry)
    return SharedCounters("throttle", window=60.0, health=health, **bounds)


def _throttle(counters: SharedCounters) -> Throttle:
    return Throttle(
        window=60.0, max_per_principal=3, max_per_ip=100, digest_key=KEY, shared=counters
    )


def _pair_key(principal: str, address: str) -> str:
    def digest(text: str) -> bytes:
        return hashlib.blake2b(text.encode(), key=KEY, digest_size=16).digest()

    return f"pair.{(digest(principal) + digest(address)).hex()}"


def test_a_block_counted_by_another_replica_refuses_here() -> None:
    """Three guesses through other replicas fill the bucket: the fourth here is refused
    although this replica counted none of them."""
    counters = _counters()
    throttle = _throttle(counters)
    empty_at = NOW + 3 * 20.0  # three attempts, 20 s each (60 s / 3)
    counters.apply(_pair_key("user:alice", "10.0.0.1"), repr(empty_at).encode(), 7)
    assert throttle.begin("user:alice", "10.0.0.1", now=NOW) == "principal"
    assert isinstance(throttle.begin("user:alice", "10.0.0.2", now=NOW), Attempt)


def test_a_deleted_key_stops_refusing() -> None:
    """A success elsewhere clears the pair (a delete in the bucket): this replica follows."""
    counters = _counters()
    throttle = _throttle(counters)
    key = _pair_key("user:alice", "10.0.0.1")
    counters.apply(key, repr(NOW + 60.0).encode(), 7)
    counters.apply(key, None, 8)
    assert isinstance(throttle.begin("user:alice", "10.0.0.1", now=NOW), Attempt)


def test_an_attempt_given_back_before_the_writer_runs_is_merged_away() -> None:
    """Changes to one key wait merged: an attempt counted and given back (not a guess)
    before the writer runs leaves nothing of its own to write."""
    counters = _counters()
    throttle = _throttle(counters)
    attempt = throttle.begin("user:alice", "10.0.0.1", now=NOW)
    assert isinstance(attempt, Attempt)
    assert {change.delta for change in counters.pending.values()} == {1}
    assert counters.wakeup.is_set()
    throttle.finish(attempt, Reason.BAD_CREDENTIALS, now=NOW)
    second = throttle.begin("user:alice", "10.0.0.1", now=NOW)
    assert isinstance(second, Attempt)
    throttle.finish(second, Reason.ACCOUNT_NOT_ALLOWED, now=NOW)  # not a guess: given back
    pair = _pair_key("user:alice", "10.0.0.1")
    assert counters.pending[pair].delta == 1  # two counted, one given back


def test_pending_writes_are_bounded_and_the_excess_is_counted() -> None:
    registry = CollectorRegistry()
    counters = _counters(registry, max_pending=2)
    for number in range(5):
        counters.changed(f"source.{number:02x}", 1, 1.0, NOW)
    assert len(counters.pending) == 2
    assert registry.get_sample_value("callout_shared_state_dropped_writes_total") == 3


def test_the_mirror_is_bounded_and_forgets_drained_keys_first() -> None:
    counters = _counters(max_mirrored=100)
    now = time.time()  # the watch applies entries as they come, at the wall clock's time
    counters.apply("pair.blocked", repr(now + 3600).encode(), 1)
    for number in range(300):
        counters.apply(f"pair.{number:04x}", repr(now - 1).encode(), number + 2)
    assert len(counters.values) == 100
    assert counters.value("pair.blocked") is not None


def test_a_value_that_is_not_a_number_is_ignored() -> None:
    counters = _counters()
    counters.apply("pair.x", b"not a number", 3)
    assert counters.value("pair.x") is None


async def test_an_attempt_past_the_limit_counted_by_all_replicas_is_refused() -> None:
    """The write tells each waiting attempt where it landed: past the window (other replicas
    filled the bucket meanwhile) means refused; an attempt whose write does not come within
    the budget is left to the local count."""
    counters = _counters()
    counters.health.recovered()
    throttle = _throttle(counters)
    now = time.time()
    attempt = throttle.begin("user:alice", "10.0.0.1", now=now)
    assert isinstance(attempt, Attempt)
    assert {name for name, _, _ in attempt.confirmations} == {"pair", "principal", "source"}
    late = throttle.begin("user:alice", "10.0.0.1", now=now)
    assert isinstance(late, Attempt)
    assert await Throttle.confirmed(late, 0.01) is None  # nothing written yet: local decides
    for key, change in counters.pending.items():
        # what the writer learns: another replica counted one before these two, so the
        # pair's bucket (3 x 20 s) holds 4 x 20 s with both
        full = now + 4 * 20.0 if key.startswith("pair.") else now + 2.0
        change.tell(full)
    assert await Throttle.confirmed(attempt, 1.0) is None  # the first of the two fitted
    assert await Throttle.confirmed(late, 1.0) == "principal"


async def test_without_kv_no_attempt_waits() -> None:
    counters = _counters()  # never reached KV: on local state
    attempt = _throttle(counters).begin("user:alice", "10.0.0.1", now=time.time())
    assert isinstance(attempt, Attempt)
    assert attempt.confirmations == ()


class _RacingKv:
    """A bucket (port boundary) where another replica wrote between our read and our
    conditional delete: JetStream answers "wrong last sequence" as a plain BadRequestError."""

    def __init__(self) -> None:
        self.deletes: list[int | None] = []

    async def delete(self, key: str, last: int | None = None) -> bool:
        self.deletes.append(last)
        if len(self.deletes) == 1:
            raise BadRequestError(code=400, err_code=10071, description="wrong last sequence")
        return True

    async def get(self, key: str) -> SimpleNamespace:
        return SimpleNamespace(value=repr(NOW + 2).encode(), revision=6)


async def test_a_conditional_delete_that_lost_the_race_is_retried_not_a_failure() -> None:
    counters = _counters()
    counters.apply("t.k", repr(NOW + 1).encode(), 5)
    counters.changed("t.k", -1, 10.0, NOW)
    kv = _RacingKv()
    await counters.flush(kv, 1.0)  # type: ignore[arg-type] # the port's two calls only
    assert kv.deletes == [5, 6]
    assert counters.pending == {}


def test_a_stale_watched_entry_never_moves_a_key_back() -> None:
    """The watch lags behind the writes under load: an entry older than the revision a
    write or a read already gave is ignored (else every compare-and-set on the key fails)."""
    counters = _counters()
    counters.apply("t.k", repr(NOW + 30).encode(), 9)
    counters.apply("t.k", repr(NOW + 10).encode(), 4)
    assert counters.values["t.k"] == (NOW + 30, 9)
    counters.apply("t.k", None, 10)  # newer: a delete
    assert counters.value("t.k") is None


class _BusyKv:
    """A bucket (port boundary) on a key the other replicas write first every time; their
    entries reach our watch late (stale revisions in between)."""

    def __init__(self, counters: SharedCounters) -> None:
        self.counters = counters
        self.revision = 5
        self.lasts: list[int] = []

    async def update(self, key: str, value: bytes, last: int) -> int:
        self.lasts.append(last)
        self.revision += 1  # another replica's write landed first
        self.counters.apply(key, repr(NOW + 1).encode(), 3)  # a stale watched entry
        raise KeyWrongLastSequenceError(description="wrong last sequence")

    async def get(self, key: str) -> SimpleNamespace:
        return SimpleNamespace(value=repr(NOW + 2).encode(), revision=self.revision)


async def test_a_key_always_written_first_elsewhere_waits_for_the_next_batch() -> None:
    """Contention is not a KV failure: the attempt goes by the local count, and its change is
    merged into what was counted meanwhile, written with the next batch."""
    counters = _counters()
    counters.health.recovered()  # on shared state: attempts wait for their count
    counters.apply("t.k", repr(NOW + 1).encode(), 5)
    waiter = counters.changed("t.k", 1, 10.0, NOW, confirm=True)
    assert waiter is not None
    kv = _BusyKv(counters)
    original_write = kv.update

    async def update(key: str, value: bytes, last: int) -> int:
        if len(kv.lasts) == 3:
            counters.changed("t.k", 2, 10.0, NOW + 1)  # counted while the writer retried
        return await original_write(key, value, last)

    kv.update = update  # type: ignore[method-assign]
    await counters.flush(kv, 1.0)  # type: ignore[arg-type] # the port's two calls only
    # each try used the revision its refresh read, never the stale watched one
    assert kv.lasts == [5, 6, 7, 8, 9, 10, 11, 12]
    assert waiter.result() is None  # not known: the local count decides
    assert counters.pending["t.k"].delta == 3  # 1 not written + 2 counted since
    assert counters.health.contended._value.get() == 1
