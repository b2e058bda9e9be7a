"""A replica that drains writes what still waits (the last logins' counts and cache entries)
before it goes, within the time it is given; a forced stop, or one on local state, writes
nothing. The bucket is a recording fake at the port boundary."""

from __future__ import annotations

import asyncio

from callout.settings import StateSettings
from callout.state.decisions import SharedDecisions
from callout.state.health import StateHealth
from callout.state.store import SharedStore, _Followed

RECORD = {"identity": {"principal": "alice"}, "until": 2_000_000_000.0}


class _Bucket:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.puts: list[str] = []

    async def put(self, key: str, value: bytes) -> int:
        await asyncio.sleep(self.delay)
        self.puts.append(key)
        return len(self.puts)


def _store(bucket: _Bucket, *, up: bool = True) -> tuple[SharedStore, SharedDecisions]:
    health = StateHealth()
    if up:
        health.recovered()
    decisions = SharedDecisions("d", ttl=60.0, key=b"k" * 32, health=health, max_pending=100)
    settings = StateSettings(enabled=True, key_file="/k", timeout=0.5)
    store = SharedStore(settings, [decisions], health)
    store._open = [_Followed(decisions, bucket)]  # type: ignore[arg-type] # the port: put only
    for number in range(3):
        decisions.put(f"k{number}", RECORD)
    return store, decisions


async def test_a_drain_writes_what_waits_before_the_store_closes() -> None:
    bucket = _Bucket()
    store, decisions = _store(bucket)
    await store.stop(write_within=1.0)
    assert sorted(bucket.puts) == ["k0", "k1", "k2"]
    assert decisions.pending == {}


async def test_a_forced_stop_or_local_state_writes_nothing() -> None:
    bucket = _Bucket()
    store, decisions = _store(bucket)
    await store.stop()
    assert bucket.puts == []
    assert len(decisions.pending) == 3
    local_bucket = _Bucket()
    local, _ = _store(local_bucket, up=False)
    await local.stop(write_within=1.0)
    assert local_bucket.puts == []


async def test_the_last_write_keeps_to_its_time() -> None:
    """A bucket slower than the time left: the stop gives up at its bound (a slow bucket
    would otherwise hold it for 5 s per batch), and what was not written stays pending."""
    bucket = _Bucket(delay=5.0)
    store, decisions = _store(bucket)
    await store.stop(write_within=0.1)
    assert bucket.puts == []
    assert len(decisions.pending) == 3
