"""Writing a bundle while the bucket's stream has no leader (just created on a cluster, or
electing one): nothing was stored, so the push tries again, a bounded number of times; a
timeout (which may have stored it) is never retried. The bucket is a fake at the port
boundary."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from nats.js.errors import NoStreamResponseError

from callout.policy.bundle import make_bundle
from callout.service.policystore import NO_LEADER_TRIES, put_bundle

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
