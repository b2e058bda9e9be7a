"""Failed-login throttling on plain values with an injected clock: attempts counted when they
start, the three limits, what counts, lock-out resistance, and the memory ceiling."""

from __future__ import annotations

import tracemalloc

import pytest

from callout.decision import DropReason, Reason
from callout.service.buckets import MEMORY_PER_ENTRY, Buckets, Familiar
from callout.service.throttle import Attempt, Busy, Throttle
from callout.service.throttlekeys import FAILING_TRACKED, digest, principal_of
from tests.unit.policy.helpers import request

ALICE = "user:alice"


def _throttle(**overrides: float) -> Throttle:
    values: dict[str, float] = {
        "window": 60,
        "max_per_principal": 3,
        "max_per_ip": 5,
        "max_per_principal_unfamiliar": 4,
        **overrides,
    }
    return Throttle(**values)  # type: ignore[arg-type]


def _source(address: str) -> bytes:
    return digest(address)


def _begin(throttle: Throttle, principal: str, address: str, now: float) -> Attempt:
    begun = throttle.begin(principal, address, now=now)
    assert isinstance(begun, Attempt), begun
    return begun


def test_simultaneous_attempts_cannot_multiply_the_limit() -> None:
    """100 guesses started together for one user from one address: only the limit's worth
    is let through to verification; the rest wait (`Busy`) and, once those ten have failed,
    are refused."""
    throttle = _throttle(max_per_principal=10, max_per_ip=1000, max_per_principal_unfamiliar=1000)
    begun = [throttle.begin(ALICE, "10.0.0.1", now=1.0) for _ in range(100)]
    started = [item for item in begun if isinstance(item, Attempt)]
    assert len(started) == 10
    assert all(isinstance(item, Busy) for item in begun[10:])
    for attempt in started:
        throttle.finish(attempt, Reason.BAD_CREDENTIALS, now=1.5)
    assert throttle.begin(ALICE, "10.0.0.1", now=2.0) == "principal"
    assert throttle.in_flight == {}


def test_concurrent_honest_logins_wait_for_the_first_success_instead_of_failing() -> None:
    """Twenty logins of one account at once from a new address: ten start, ten wait; when one
    of the ten succeeds the address is familiar and every waiter may start."""
    throttle = _throttle(max_per_principal=10, max_per_ip=1000, max_per_principal_unfamiliar=1000)
    begun = [throttle.begin(ALICE, "10.0.0.1", now=1.0) for _ in range(20)]
    started = [item for item in begun if isinstance(item, Attempt)]
    assert len(started) == 10
    throttle.finish(started[0], Reason.ALLOWED, now=1.1)
    assert all(isinstance(throttle.begin(ALICE, "10.0.0.1", now=1.1), Attempt) for _ in range(10))


def test_an_address_flood_is_held_at_its_limit_even_concurrently() -> None:
    throttle = _throttle(max_per_principal=1000, max_per_ip=100)
    begun = [throttle.begin(f"user:u{index}", "10.0.0.1", now=1.0) for index in range(300)]
    started = [item for item in begun if isinstance(item, Attempt)]
    assert len(started) == 100
    for attempt in started:
        throttle.finish(attempt, Reason.UNKNOWN_USER, now=1.0)
    assert throttle.begin("user:another", "10.0.0.1", now=1.0) == "address"


def test_concurrent_logins_where_the_principal_is_familiar_are_not_refused() -> None:
    """A fleet sharing one account behind one address: after one success there, 50 logins at
    once all start (a limit of 3 counts failures there, not concurrency)."""
    throttle = _throttle(max_per_principal=3, max_per_ip=5)
    throttle.finish(_begin(throttle, ALICE, "10.0.0.1", 0), Reason.ALLOWED, now=0)
    attempts = [_begin(throttle, ALICE, "10.0.0.1", 1) for _ in range(50)]
    for attempt in attempts:
        throttle.finish(attempt, Reason.ALLOWED, now=1)
    throttle.finish(_begin(throttle, ALICE, "10.0.0.1", 2), Reason.OVERLOADED, now=2)
    assert throttle.sources.empty_at == {}  # her overloaded login does not count either
    for _ in range(3):  # failures still count, when they fail
        throttle.finish(_begin(throttle, ALICE, "10.0.0.1", 3), Reason.BAD_CREDENTIALS, now=3)
    assert throttle.begin(ALICE, "10.0.0.1", now=4) == "principal"


def test_cheap_attempts_are_counted_when_they_fail() -> None:
    """Work that takes microseconds cannot pile up: counted at its end, the limit still holds."""
    throttle = _throttle(max_per_principal=3, max_per_ip=1000)
    nkey = "nkey:UABC"
    attempts = [throttle.begin(nkey, "10.0.0.1", now=1, early=False) for _ in range(3)]
    for attempt in attempts:
        assert isinstance(attempt, Attempt)
        throttle.finish(attempt, Reason.BAD_NKEY_SIGNATURE, now=1)
    assert throttle.begin(nkey, "10.0.0.1", now=2, early=False) == "principal"
    for outcome in (Reason.UNKNOWN_USER, Reason.OVERLOADED):  # a flood after a failure
        unknown = throttle.begin("", "10.0.0.2", now=2, early=False)
        assert isinstance(unknown, Attempt)
        throttle.finish(unknown, outcome, now=2)
    assert throttle.sources.level(_source("10.0.0.2"), 2) == pytest.approx(2.0)


def test_a_success_gives_its_attempt_back_and_clears_the_pair() -> None:
    """A user who mistyped twice and then logged in does not start the next day half-locked."""
    throttle = _throttle()
    for second in (1, 2):
        throttle.finish(_begin(throttle, ALICE, "10.0.0.1", second), Reason.BAD_CREDENTIALS, now=2)
    throttle.finish(_begin(throttle, ALICE, "10.0.0.1", 3), Reason.ALLOWED, now=3)
    assert throttle.pairs.empty_at == {}
    for second in (4, 5):
        throttle.finish(_begin(throttle, ALICE, "10.0.0.1", second), Reason.BAD_CREDENTIALS, now=5)
    assert isinstance(throttle.begin(ALICE, "10.0.0.1", now=6), Attempt)


def test_our_own_faults_and_policy_refusals_are_given_back() -> None:
    throttle = _throttle(max_per_principal=1, max_per_ip=1)
    for outcome in (Reason.BACKEND_UNAVAILABLE, Reason.INTERNAL_ERROR, Reason.NO_MATCHING_RULE):
        throttle.finish(_begin(throttle, ALICE, "10.0.0.1", 1), outcome, now=1)
    assert throttle.tracked == 0


@pytest.mark.parametrize("outcome", [Reason.OVERLOADED, DropReason.EXPIRED])
@pytest.mark.parametrize("early", [True, False])
def test_expired_and_overloaded_requests_count_toward_a_failing_source_only(
    outcome: Reason | DropReason, early: bool
) -> None:
    """After one failed login from the address, its flood counts there (not for the user)."""
    throttle = _throttle(max_per_principal=2, max_per_ip=3)
    throttle.finish(_begin(throttle, "user:eve", "10.0.0.1", 1), Reason.BAD_CREDENTIALS, now=1)
    for _ in range(2):
        attempt = throttle.begin(ALICE, "10.0.0.1", now=1, early=early)
        assert isinstance(attempt, Attempt)
        throttle.finish(attempt, outcome, now=1)
    assert throttle.begin("user:bob", "10.0.0.1", now=2) == "address"
    assert isinstance(throttle.begin(ALICE, "10.0.0.2", now=2), Attempt)  # the user is not


@pytest.mark.parametrize("outcome", [Reason.OVERLOADED, DropReason.EXPIRED])
@pytest.mark.parametrize("early", [True, False])
def test_an_address_with_no_failure_is_not_blocked_by_its_own_overload(
    outcome: Reason | DropReason, early: bool
) -> None:
    """A restarted service knows no familiar address: 50 honest users behind one NAT, most of
    them refused as overloaded in the reconnect storm, leave the address open; the first
    failure from it makes its overload count again."""
    throttle = _throttle(max_per_principal=2, max_per_ip=3, max_per_principal_unfamiliar=100)
    for index in range(50):
        attempt = throttle.begin(f"user:u{index}", "10.0.0.1", now=1, early=early)
        assert isinstance(attempt, Attempt)
        throttle.finish(attempt, Reason.ALLOWED if index % 10 == 0 else outcome, now=1)
    assert throttle.sources.level(_source("10.0.0.1"), 1) == 0
    throttle.finish(_begin(throttle, "user:eve", "10.0.0.1", 2), Reason.BAD_CREDENTIALS, now=2)
    for index in range(2):
        attempt = throttle.begin(f"user:v{index}", "10.0.0.1", now=2, early=early)
        assert isinstance(attempt, Attempt)
        throttle.finish(attempt, outcome, now=2)
    assert throttle.begin("user:w", "10.0.0.1", now=2) == "address"


def test_another_attempt_in_progress_is_not_a_failure_of_the_address() -> None:
    """Counted at their start, attempts still being verified fill the address's bucket too;
    they are not failures, so an overloaded one beside them is still given back."""
    throttle = _throttle(max_per_principal=2, max_per_ip=5, max_per_principal_unfamiliar=100)
    waiting = [_begin(throttle, f"user:u{index}", "10.0.0.1", 1) for index in range(3)]
    throttle.finish(_begin(throttle, "user:x", "10.0.0.1", 1), Reason.OVERLOADED, now=1)
    assert throttle.sources.level(_source("10.0.0.1"), 1) == pytest.approx(3.0)
    for attempt in waiting:
        throttle.finish(attempt, Reason.ALLOWED, now=1)
    assert throttle.sources.level(_source("10.0.0.1"), 1) == 0


@pytest.mark.parametrize("outcome", [Reason.UNKNOWN_TOKEN, Reason.BAD_CREDENTIALS])
def test_token_guesses_count_toward_the_source(outcome: Reason) -> None:
    """Each guessed token is a new principal key; the address limit still catches them."""
    throttle = _throttle(max_per_ip=3)
    for index in range(3):
        throttle.finish(_begin(throttle, f"token:{index:032x}", "10.0.0.1", 1), outcome, now=1)
    assert throttle.begin("token:ffff", "10.0.0.1", now=2) == "address"


def test_a_spray_from_many_addresses_cannot_lock_the_user_out_of_a_familiar_address() -> None:
    """The principal-wide limit applies only where the user has not logged in recently."""
    throttle = _throttle(max_per_principal_unfamiliar=4)
    throttle.finish(_begin(throttle, ALICE, "192.0.2.7", 0), Reason.ALLOWED, now=0)
    for index in range(4):  # the attacker, one guess from each of several addresses
        attempt = _begin(throttle, ALICE, f"10.0.0.{index}", 1)
        throttle.finish(attempt, Reason.BAD_CREDENTIALS, now=1)
    assert throttle.begin(ALICE, "10.0.0.99", now=2) == "principal"  # a new address: capped
    assert isinstance(throttle.begin(ALICE, "192.0.2.7", now=2), Attempt)  # her own: not


def test_familiarity_fades() -> None:
    throttle = _throttle(max_per_principal_unfamiliar=1, familiar_for=100)
    throttle.finish(_begin(throttle, ALICE, "192.0.2.7", 0), Reason.ALLOWED, now=0)
    throttle.finish(_begin(throttle, ALICE, "10.0.0.1", 150), Reason.BAD_CREDENTIALS, now=150)
    assert throttle.begin(ALICE, "192.0.2.7", now=151) == "principal"


def test_a_block_lifts_by_draining_one_attempt_per_interval() -> None:
    """A burst of ``limit``, then one more every window / limit seconds; idle after a window."""
    throttle = _throttle(max_per_principal=3, max_per_ip=1000)
    for _ in range(3):
        throttle.finish(_begin(throttle, ALICE, "10.0.0.1", 0), Reason.BAD_CREDENTIALS, now=0)
    assert throttle.begin(ALICE, "10.0.0.1", now=19.9) == "principal"
    throttle.finish(_begin(throttle, ALICE, "10.0.0.1", 20.1), Reason.BAD_CREDENTIALS, now=21)
    assert throttle.begin(ALICE, "10.0.0.1", now=21) == "principal"
    assert isinstance(throttle.begin("user:bob", "10.0.0.1", now=100), Attempt)
    # everything drained (nothing counted since 20.1 + 60 < 200): an insert sweeps it all
    throttle.pairs.add(b"new", now=200)
    throttle.pairs.max_tracked = 1
    throttle.pairs.add(b"newer", now=200)
    assert list(throttle.pairs.empty_at) == [b"newer"]


def test_idle_entries_leave_when_new_keys_arrive_not_only_when_the_table_is_full() -> None:
    buckets = Buckets(window=60, limit=2, max_tracked=1000)
    for key in (b"a", b"b", b"c"):
        assert buckets.add(key, 0)  # each drains at 30 s
    assert buckets.add(b"a", 10)  # a: drains at 60 s, now the newest
    assert buckets.add(b"d", 31)  # b and c drained: they go
    assert list(buckets.empty_at) == [b"a", b"d"]
    familiar = Familiar(remember=100, max_tracked=1000)
    familiar.add(b"x", 0)
    familiar.add(b"y", 50)
    familiar.add(b"z", 120)  # x forgotten at 100
    assert list(familiar.until) == [b"y", b"z"]


def test_eviction_takes_idle_entries_first_and_never_lifts_a_block() -> None:
    buckets = Buckets(window=60, limit=2, max_tracked=3)
    assert buckets.add(b"victim", 0)
    assert buckets.add(b"victim", 0)
    assert buckets.add(b"idle", 0)  # drains at 30 s
    assert buckets.add(b"busy", 29)
    assert buckets.full(b"victim", 29.5)
    assert buckets.add(b"new", 30.5)  # "idle" drained: it goes, not the older block
    assert set(buckets.empty_at) == {b"victim", b"busy", b"new"}
    assert buckets.full(b"victim", 30.5) is False  # one attempt drained; still tracked
    assert buckets.add(b"victim", 30.5)  # full again
    assert buckets.add(b"newest", 31)  # "busy" (below its limit) goes, the block stays
    assert buckets.full(b"victim", 31)
    assert buckets.add(b"newest", 31)
    assert buckets.add(b"new", 31)
    assert not buckets.add(b"one-more", 31)  # only blocks left: fail closed, nothing lifted
    assert all(buckets.full(key, 31) for key in (b"victim", b"new", b"newest"))


def test_a_full_table_of_blocks_refuses_new_keys() -> None:
    throttle = _throttle(
        max_per_principal=1, max_per_ip=1000, max_tracked=2, max_per_principal_unfamiliar=1
    )
    for name in ("a", "b"):
        throttle.finish(_begin(throttle, f"user:{name}", "", 1), Reason.BAD_CREDENTIALS, now=1)
    assert throttle.begin("user:c", "", now=2) == "table"
    assert throttle.begin("user:a", "", now=2) == "principal"  # the blocks all hold


def test_a_full_table_of_blocks_refuses_new_keys_counted_only_on_failure() -> None:
    """Cheap attempts are counted when they fail; one whose failure could not be counted
    (its table holds only blocks) is refused at its start, never let through uncounted."""
    throttle = _throttle(
        max_per_principal=1, max_per_ip=1000, max_tracked=2, max_per_principal_unfamiliar=1
    )
    for name in ("a", "b"):
        begun = throttle.begin(f"nkey:{name}", "", now=1, early=False)
        assert isinstance(begun, Attempt)
        throttle.finish(begun, Reason.UNKNOWN_USER, now=1)
    assert throttle.begin("nkey:c", "", now=2, early=False) == "table"
    assert throttle.begin("nkey:a", "", now=2, early=False) == "principal"
    assert isinstance(throttle.begin("nkey:c", "", now=62, early=False), Attempt)  # drained


def test_room_is_checked_without_changing_the_table() -> None:
    buckets = Buckets(window=60, limit=1, max_tracked=2)
    assert buckets.add(b"blocked", 0)
    assert buckets.add(b"idle", 0)
    assert buckets.has_room(b"blocked", 1)  # tracked already
    assert not buckets.has_room(b"new", 1)  # both blocked until 60
    assert buckets.has_room(b"new", 61)  # drained: evictable
    assert list(buckets.empty_at) == [b"blocked", b"idle"]


def _spray(throttle: Throttle, count: int, *, offset: int = 0) -> None:
    """``count`` failed logins, each a new nkey from a new address, the clock standing still."""
    for index in range(offset, offset + count):
        begun = throttle.begin(f"nkey:U{index:055d}", f"10.{index >> 16}.{index % 65536}", now=1)
        if isinstance(begun, Attempt):
            throttle.finish(begun, Reason.UNKNOWN_USER, now=1)


def test_a_table_stays_bounded_under_a_million_key_spray() -> None:
    """1,000,000 distinct keys with nothing draining (the clock stands still): the table stays
    at its bound, and a key blocked before the spray is still blocked after it."""
    bound = 5_000
    table = Buckets(window=60, limit=2, max_tracked=bound)
    assert table.add(b"victim", 0)
    assert table.add(b"victim", 0)
    for index in range(1_000_000):
        assert table.add(index.to_bytes(16, "big"), 1)
    assert len(table) == bound
    assert table.full(b"victim", 1)


def test_every_throttle_table_stays_bounded_under_a_spray_of_names_and_addresses() -> None:
    """The whole throttle, each attempt a new nkey from a new address: all tables at their
    bound, and a victim blocked before the spray is still blocked after it."""
    bound = 2_000
    throttle = _throttle(max_tracked=bound, max_per_principal=2, max_per_ip=2)
    for _ in range(2):
        throttle.finish(_begin(throttle, ALICE, "192.0.2.1", 0), Reason.BAD_CREDENTIALS, now=0)
    _spray(throttle, 200_000)
    assert len(throttle.pairs) == len(throttle.sources) == len(throttle.principals) == bound
    assert throttle.begin(ALICE, "192.0.2.1", now=1) == "principal"


@pytest.mark.parametrize("bound", [1_000, 1_400, 2_000, 2_800])  # dict fills, high and low
def test_memory_stays_under_the_documented_ceiling(bound: int) -> None:
    """Bytes held by full tables, traced: at most 4 x max_tracked x MEMORY_PER_ENTRY, plus the
    failing addresses (at most min(max_tracked, FAILING_TRACKED) entries)."""
    throttle = _throttle(max_tracked=bound)
    for index in range(bound):  # every familiar slot taken too
        throttle.familiar.add(index.to_bytes(16, "big"), now=0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _spray(throttle, 5 * bound)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    failing = min(bound, FAILING_TRACKED)
    assert len(throttle.failing) == failing  # every sprayed address failed
    assert grown <= (3 * bound + failing) * MEMORY_PER_ENTRY
    assert throttle.tracked == 4 * bound


def test_the_principal_key_of_a_token_is_a_digest_never_the_token() -> None:
    """The throttle's memory must not become a store of secrets."""
    token = "cot_abc_" + "s3cr3t" * 6
    login = request()
    login = type(login)(**{**_fields(login), "connect": type(login.connect)(auth_token=token)})
    key, shown = principal_of(login)
    assert key.startswith("token:")
    assert token not in key
    assert shown == "(token)"
    assert principal_of(request(user="alice", password="pw")) == ("user:alice", "alice")


def _fields(value: object) -> dict[str, object]:
    return {name: getattr(value, name) for name in value.__slots__}  # type: ignore[attr-defined]


def test_a_forgotten_failing_address_counts_its_overload_again_after_its_next_failure() -> None:
    """The failing addresses are a bounded table (here max_tracked = 2): a third failing address
    makes the first forgotten, whose overload is given back until it fails again."""
    throttle = _throttle(max_per_principal=100, max_per_ip=100, max_tracked=2)
    for index in range(3):
        address = f"10.0.0.{index}"
        throttle.finish(_begin(throttle, f"user:u{index}", address, 1), Reason.UNKNOWN_USER, now=1)
    assert len(throttle.failing) == 2
    first = _source("10.0.0.0")
    level = throttle.sources.level(first, 1)
    throttle.finish(_begin(throttle, "user:a", "10.0.0.0", 1), Reason.OVERLOADED, now=1)
    assert throttle.sources.level(first, 1) == pytest.approx(level)  # given back
    throttle.finish(_begin(throttle, "user:b", "10.0.0.0", 1), Reason.UNKNOWN_USER, now=1)
    throttle.finish(_begin(throttle, "user:c", "10.0.0.0", 1), Reason.OVERLOADED, now=1)
    assert throttle.sources.level(first, 1) == pytest.approx(level + 2)  # failure + overload
