"""The policy bucket: JetStream KV I/O for policy bundles (`callout.policy.bundle`).

One bucket, one key (`BUNDLE_KEY`); every push is a new revision of that key, and the bucket
keeps ``policy.kv.history`` of them (at most 64, the JetStream KV limit) for `callout policy
history` and rollback. A revision is the KV's stream sequence: it only grows, across keys and
pushes, so "a newer revision" is well defined for every replica. The bucket's
``max_value_size`` is `MAX_BUNDLE_BYTES`, so the server itself refuses anything larger.

nats-py ships no types: its objects are `Any` here, behind these few functions.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.js import api
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    NoKeysError,
    NoStreamResponseError,
)

from callout.errors import PolicyError
from callout.policy.bundle import MAX_BUNDLE_BYTES, PolicyBundle, decode_bundle, encode_bundle
from callout.settings import PolicyKvSettings

BUNDLE_KEY = "bundle"
NO_LEADER_TRIES = 20  # writes tried while the stream has no leader, `NO_LEADER_PAUSE` apart
NO_LEADER_PAUSE = 0.25
HISTORY_TRIES = 10  # listings tried while the stream holds messages and none are listed
HISTORY_PAUSE = 0.1
_PUT = None  # nats-py's operation of a plain put (deletes and purges name theirs)


@dataclass(frozen=True, slots=True)
class Revision:
    """One revision of the bundle key: the bundle, or why its value is not one."""

    revision: int
    stored_at: datetime | None  # None where the server does not say (a get by revision)
    size: int  # bytes of the stored value
    bundle: PolicyBundle | None
    problem: str = ""  # set when ``bundle`` is None (a delete, a damaged value)


def revision_of(entry: Any) -> Revision:
    """A nats-py KV ``Entry`` as a `Revision` (its value decoded and checked)."""
    value: bytes = entry.value or b""
    stored = entry.created.astimezone(UTC) if isinstance(entry.created, datetime) else None
    if entry.operation is not _PUT:
        return Revision(entry.revision, stored, 0, None, f"not a bundle: {entry.operation}")
    try:
        bundle = decode_bundle(value)
    except PolicyError as error:
        return Revision(entry.revision, stored, len(value), None, str(error))
    return Revision(entry.revision, stored, len(value), bundle)


async def open_bucket(js: Any, settings: PolicyKvSettings, *, create: bool = False) -> Any:
    """The bucket's nats-py ``KeyValue``; with ``create``, made first if it does not exist
    (`BucketNotFoundError` otherwise)."""
    try:
        return await js.key_value(settings.bucket)
    except BucketNotFoundError:
        if not create:
            raise
    return await js.create_key_value(
        api.KeyValueConfig(
            bucket=settings.bucket,
            description="nats-auth-callout policy bundles (callout policy push)",
            history=settings.history,
            replicas=settings.replicas,
            max_value_size=MAX_BUNDLE_BYTES,
            storage=api.StorageType.FILE,
        )
    )


async def put_bundle(kv: Any, bundle: PolicyBundle, *, pause: float = NO_LEADER_PAUSE) -> int:
    """Store ``bundle`` as the newest revision; its revision number.

    A stream with no leader yet (a bucket just made on a cluster, a leader election after a
    node left) has no responder: nothing was stored, so the write is tried again, at most
    `NO_LEADER_TRIES` times ``pause`` apart. A timeout is not retried (it may have been stored).
    """
    value = encode_bundle(bundle)
    for _ in range(NO_LEADER_TRIES - 1):
        with contextlib.suppress(NoStreamResponseError):
            return int(await kv.put(BUNDLE_KEY, value))
        await asyncio.sleep(pause)
    return int(await kv.put(BUNDLE_KEY, value))  # the last try: its error is the answer


async def history(kv: Any, *, pause: float = HISTORY_PAUSE) -> list[Revision]:
    """Every revision the bucket still keeps, oldest first.

    nats-py's listing can come back empty while the stream holds revisions (its end-of-listing
    marker races the first delivery; seen on a 3-node cluster): an empty listing of a bucket
    whose stream holds messages is read again, `HISTORY_TRIES` times at most, then a
    `TimeoutError` rather than an empty history."""
    for _ in range(HISTORY_TRIES):
        try:
            entries = await kv.history(BUNDLE_KEY)
        except NoKeysError:
            if not (await kv.status()).values:
                return []
            await asyncio.sleep(pause)
            continue
        return [revision_of(entry) for entry in entries]
    raise TimeoutError("the bucket holds messages but no revision could be listed; try again")


async def revision(kv: Any, number: int) -> Revision | None:
    """Revision ``number`` of the bundle key, None if the bucket no longer has it."""
    try:
        entry = await kv.get(BUNDLE_KEY, revision=number)
    except KeyNotFoundError:
        return None
    if entry.key != BUNDLE_KEY:  # a revision number of another key
        return None
    return revision_of(entry)


async def latest_revision(kv: Any) -> int | None:
    """The newest revision of the bundle key (a put, delete or purge), None if none."""
    try:
        entry = await kv.get(BUNDLE_KEY)
    except KeyNotFoundError:
        return None
    number: int = entry.revision
    return number
