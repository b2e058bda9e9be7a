"""The decision cache: reconnect storms cost one verification, failures are never remembered."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from callout.backends.cache import CachedBackend, DecisionCache
from callout.decision import Decision, Identity, Reason
from callout.errors import BackendUnavailableError
from callout.policy import PolicySnapshot
from callout.protocol.claims import AuthRequest
from tests.unit.policy.helpers import request, snapshot

ALICE = request(user="alice", password="right")


class Directory:
    """A fake password backend (the port boundary): right password = identity."""

    name = "ldap"

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay
        self.down = False

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.down:
            raise BackendUnavailableError("ldap", "down")
        if request.connect.password == "right":
            return Identity(request.connect.user, "ldap", groups=("g",))
        return Decision.deny(Reason.BAD_CREDENTIALS, backend="ldap")


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    return snapshot(tmp_path, "roles: {}\n")


def cached(directory: Directory, **options: object) -> CachedBackend:
    settings: dict[str, object] = {"ttl": 60.0, "max_entries": 100, **options}
    return CachedBackend(directory, DecisionCache(**settings))  # type: ignore[arg-type]


async def test_a_successful_login_is_verified_once_within_the_ttl(policy: PolicySnapshot) -> None:
    """The point of the cache: the second login with the same credential costs nothing."""
    directory = Directory()
    backend = cached(directory)
    first = await backend.authenticate(ALICE, policy)
    second = await backend.authenticate(ALICE, policy)
    assert isinstance(first, Identity)
    assert second == first
    assert directory.calls == 1
    assert (backend.cache.hits, backend.cache.misses) == (1, 1)


async def test_failed_logins_and_outages_are_never_cached(policy: PolicySnapshot) -> None:
    """A wrong password stays wrong on every try; an outage must be retried, not remembered."""
    directory = Directory()
    backend = cached(directory)
    wrong = request(user="alice", password="wrong")
    for _ in range(2):
        assert isinstance(await backend.authenticate(wrong, policy), Decision)
    directory.down = True
    for _ in range(2):
        with pytest.raises(BackendUnavailableError):
            await backend.authenticate(ALICE, policy)
    assert directory.calls == 4
    assert len(backend.cache) == 0


async def test_a_different_password_is_a_miss(policy: PolicySnapshot) -> None:
    """The key covers the password: a cached success never vouches for another password."""
    directory = Directory()
    backend = cached(directory)
    await backend.authenticate(ALICE, policy)
    decision = await backend.authenticate(request(user="alice", password="wrong"), policy)
    assert isinstance(decision, Decision)
    assert decision.reason is Reason.BAD_CREDENTIALS


async def test_entries_expire_after_the_ttl(policy: PolicySnapshot) -> None:
    """A password revoked in the directory stops working within the TTL."""
    clock, directory = Clock(), Directory()
    backend = cached(directory, ttl=60.0, clock=clock)
    await backend.authenticate(ALICE, policy)
    clock.now += 59
    await backend.authenticate(ALICE, policy)
    clock.now += 2
    await backend.authenticate(ALICE, policy)
    assert directory.calls == 2


async def test_the_cache_is_bounded_and_evicts_the_least_recently_used(
    policy: PolicySnapshot,
) -> None:
    """Memory stays bounded however many users log in."""
    directory = Directory()
    backend = cached(directory, max_entries=2)
    for user in ("a", "b", "a", "c"):  # "b" is now the least recently used
        await backend.authenticate(request(user=user, password="right"), policy)
    assert len(backend.cache) == 2
    calls = directory.calls
    await backend.authenticate(request(user="a", password="right"), policy)
    assert directory.calls == calls
    await backend.authenticate(request(user="b", password="right"), policy)
    assert directory.calls == calls + 1


async def test_a_policy_reload_empties_the_cache(policy: PolicySnapshot) -> None:
    """Nothing verified under the old policy is reused after a reload."""
    directory = Directory()
    backend = cached(directory)
    await backend.authenticate(ALICE, policy)
    reloaded = dataclasses.replace(policy, digest="another-digest")
    await backend.authenticate(ALICE, reloaded)
    assert directory.calls == 2
    assert len(backend.cache) == 1


async def test_a_storm_of_identical_logins_shares_one_verification(
    policy: PolicySnapshot,
) -> None:
    """After a NATS restart, 50 clients of one service account cost one bind, not 50."""
    directory = Directory(delay=0.05)
    backend = cached(directory)
    results = await asyncio.gather(*(backend.authenticate(ALICE, policy) for _ in range(50)))
    assert all(isinstance(result, Identity) for result in results)
    assert directory.calls == 1
    assert backend.cache.shared == 49


async def test_a_waiter_running_out_of_time_does_not_cancel_the_others(
    policy: PolicySnapshot,
) -> None:
    """Each request has its own deadline; the shared verification must survive one expiring."""
    directory = Directory(delay=0.1)
    backend = cached(directory)
    impatient = asyncio.ensure_future(backend.authenticate(ALICE, policy))
    patient = asyncio.ensure_future(backend.authenticate(ALICE, policy))
    await asyncio.sleep(0.01)
    impatient.cancel()
    assert isinstance(await patient, Identity)
    assert directory.calls == 1


async def test_nkey_logins_and_a_disabled_cache_go_straight_through(
    policy: PolicySnapshot,
) -> None:
    """Only password logins are cached, and ttl 0 turns the cache off."""
    directory = Directory()
    backend = cached(directory)
    nkey_login = request(user="alice", password="right", nkey="UABC")
    await backend.authenticate(nkey_login, policy)
    await backend.authenticate(nkey_login, policy)
    off = cached(directory, ttl=0.0)
    await off.authenticate(ALICE, policy)
    await off.authenticate(ALICE, policy)
    assert directory.calls == 4


def test_cache_keys_are_process_secret_hmacs() -> None:
    """Keys hold no password, and cannot be recomputed without this process's random key."""
    one, two = DecisionCache(ttl=1, max_entries=1), DecisionCache(ttl=1, max_entries=1)
    key = one.key("digest", "ldap", "alice", "right")
    assert len(key) == 32
    assert b"right" not in key
    assert key != two.key("digest", "ldap", "alice", "right")
    assert key != one.key("digest", "ldap", "alic", "eright")


async def test_every_lookup_is_reported_as_hit_or_miss(policy: PolicySnapshot) -> None:
    """The callout_cache_lookups_total metric needs each lookup; shared waits are hits."""
    seen: list[bool] = []
    directory = Directory(delay=0.05)
    backend = cached(directory, on_lookup=seen.append)
    await asyncio.gather(backend.authenticate(ALICE, policy), backend.authenticate(ALICE, policy))
    await backend.authenticate(ALICE, policy)
    assert directory.calls == 1
    assert sorted(seen) == [False, True, True]
