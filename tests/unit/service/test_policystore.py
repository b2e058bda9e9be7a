"""Writing a bundle while the bucket's stream has no leader (just created on a cluster, or
electing one): nothing was stored, so the push tries again, a bounded number of times; a
timeout (which may have stored it) is never retried. Listing the history when nats-py's
listing comes back empty although the stream holds revisions: read again, bounded. The bucket
is a fake at the port boundary."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from nats.js.errors import NoKeysError, NoStreamResponseError

from callout.policy.bundle import encode_bundle, make_bundle
from callout.service.policystore import HISTORY_TRIES, NO_LEADER_TRIES, history, put_bundle

BUNDLE = make_bundle({"p.yaml": "version: 1\n"}, pushed_by="ci", pushed_at=datetime.now(UTC))


class _Bucket:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.puts = 0

    async def put(self, key: str, value: bytes) -> int:
        self.puts += 1
        if self.failures:
            raise self.failures.pop(0)
        return 41 + self.puts


async def test_a_stream_without_a_leader_yet_is_tried_again() -> None:
    bucket = _Bucket([NoStreamResponseError(), NoStreamResponseError()])
    assert await put_bundle(bucket, BUNDLE, pause=0.0) == 44
    assert bucket.puts == 3


async def test_the_retries_are_bounded_and_the_last_error_is_the_answer() -> None:
    bucket = _Bucket([NoStreamResponseError() for _ in range(NO_LEADER_TRIES + 5)])
    with pytest.raises(NoStreamResponseError):
        await put_bundle(bucket, BUNDLE, pause=0.0)
    assert bucket.puts == NO_LEADER_TRIES


async def test_a_timeout_is_not_retried() -> None:
    bucket = _Bucket([TimeoutError()])
    with pytest.raises(TimeoutError):
        await put_bundle(bucket, BUNDLE, pause=0.0)
    assert bucket.puts == 1


class _Listed:
    """A bucket whose listing raises NoKeysError ``empty`` times before it lists ``entries``."""

    def __init__(self, empty: int, entries: list[Any], messages: int) -> None:
        self.empty, self.entries, self.messages, self.listings = empty, entries, messages, 0

    async def history(self, key: str) -> list[Any]:
        self.listings += 1
        if self.empty:
            self.empty -= 1
            raise NoKeysError
        return self.entries

    async def status(self) -> SimpleNamespace:
        return SimpleNamespace(values=self.messages)


def _entry(revision: int) -> SimpleNamespace:
    value = encode_bundle(BUNDLE)
    return SimpleNamespace(
        revision=revision, value=value, created=datetime.now(UTC), operation=None
    )


async def test_an_empty_listing_of_a_bucket_holding_revisions_is_read_again() -> None:
    bucket = _Listed(empty=2, entries=[_entry(1), _entry(2)], messages=2)
    assert [r.revision for r in await history(bucket, pause=0.0)] == [1, 2]
    assert bucket.listings == 3


async def test_an_empty_bucket_has_an_empty_history_at_once() -> None:
    bucket = _Listed(empty=1, entries=[], messages=0)
    assert await history(bucket, pause=0.0) == []
    assert bucket.listings == 1


async def test_a_listing_that_stays_empty_is_an_error_not_an_empty_history() -> None:
    bucket = _Listed(empty=HISTORY_TRIES + 5, entries=[], messages=3)
    with pytest.raises(TimeoutError, match="no revision could be listed"):
        await history(bucket, pause=0.0)
    assert bucket.listings == HISTORY_TRIES
