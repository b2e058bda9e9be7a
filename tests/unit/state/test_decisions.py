"""Shared decision-cache entries: adopted by another replica's cache for the rest of their
time, and ignored when their value was changed by anyone without the shared key."""

from __future__ import annotations

import json

from callout.backends.cache import DecisionCache
from callout.decision import Identity
from callout.service.sharing import share_decision_cache
from callout.state.decisions import SharedDecisions
from callout.state.health import StateHealth

KEY = b"s" * 32
NOW = 1_000_000.0
ALICE = Identity(principal="alice", backend="static", groups=("ops",), attributes={"team": "a"})


def _replica(clock: list[float]) -> tuple[DecisionCache, SharedDecisions]:
    cache = DecisionCache(ttl=60.0, max_entries=10, key=KEY, clock=lambda: clock[0])
    shared = SharedDecisions("d", ttl=60.0, key=KEY, health=StateHealth(), max_pending=10)
    share_decision_cache(cache, shared, clock=lambda: clock[0])
    return cache, shared


async def test_an_entry_stored_on_one_replica_is_served_by_another() -> None:
    clock = [NOW]
    first, first_shared = _replica(clock)
    second, second_shared = _replica(clock)
    key = first.key("digest", "static", "alice", "secret")

    async def verify() -> Identity:
        return ALICE

    assert await first.through("digest", key, verify) == ALICE
    (written,) = first_shared.pending.items()
    second_shared.apply(written[0], written[1], 1)  # what the watch delivers
    assert second.key("digest", "static", "alice", "secret") == key  # the shared HMAC key
    assert second.get(key) == ALICE
    clock[0] += 61
    assert second.get(key) is None  # the entry's own time, not a fresh ttl


def test_the_value_holds_no_secret() -> None:
    cache, shared = _replica([NOW])
    assert cache.on_store is not None
    cache.on_store(cache.key("digest", "static", "alice", "secret"), ALICE)
    (body,) = shared.pending.values()
    assert b"secret" not in body
    assert b"$argon2" not in body


def test_an_entry_changed_without_the_key_is_ignored() -> None:
    """Write access to the bucket must not let anyone attach another identity to a cached
    credential (bob's password logging in as alice)."""
    clock = [NOW]
    first, first_shared = _replica(clock)
    second, second_shared = _replica(clock)
    assert first.on_store is not None
    key = first.key("digest", "static", "bob", "bob-pw")
    first.on_store(key, Identity(principal="bob", backend="static"))
    ((name, body),) = first_shared.pending.items()
    forged = json.loads(body)
    forged["entry"]["principal"] = "alice"
    second_shared.apply(name, json.dumps(forged).encode(), 2)
    second_shared.apply(name, b"not json", 3)
    assert second.get(key) is None
