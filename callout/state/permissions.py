"""The least privilege the service's NATS user needs for its buckets (README "Running several
replicas"; a test runs the shared state under exactly these permissions)."""

from __future__ import annotations

from callout.settings import StateSettings


def bucket_subjects(bucket: str, *, create: bool) -> list[str]:
    """What publishing to one bucket ``bucket`` takes: bind (and create) it, read, write,
    watch it (an ordered consumer: create, info, delete, flow control)."""
    stream = f"KV_{bucket}"
    subjects = [f"$JS.API.STREAM.INFO.{stream}"]
    if create:
        subjects.append(f"$JS.API.STREAM.CREATE.{stream}")
    return [
        *subjects,
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.API.CONSUMER.DELETE.{stream}.*",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.FC.{stream}.>",
        f"$KV.{bucket}.>",
    ]


def state_permissions(
    settings: StateSettings,
    *,
    throttle: bool = True,
    sessions: bool = True,
    decision_cache: bool = True,
) -> dict[str, list[str]]:
    """Publish and subscribe permissions for the buckets the enabled features use (on top of
    what the service needs anyway: `$SYS.REQ.USER.AUTH` and its replies)."""
    buckets = [
        bucket
        for bucket, used in (
            (settings.throttle_bucket, throttle),
            (settings.revocations_bucket, sessions),
            (settings.decisions_bucket, decision_cache),
            (settings.sessions_bucket, sessions),
        )
        if used
    ]
    publish = [s for b in buckets for s in bucket_subjects(b, create=settings.create_buckets)]
    return {"publish": publish, "subscribe": ["_INBOX.>"]}
