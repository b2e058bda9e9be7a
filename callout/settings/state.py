"""Shared state on JetStream KV (README "Running several replicas"): throttle counters and
blocks, the deny list, the decision cache and the session registry, shared by the replicas of
one deployment. Off by default."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from callout.settings.base import Section
from callout.settings.durations import Seconds

_BUCKET = r"^[A-Za-z0-9_-]+$"


class StateSettings(Section):
    """The buckets, their replication, the key the replicas share, and the time budgets.

    The service's own NATS login (``nats``) uses the buckets; README "Running several
    replicas" lists the exact subjects it needs."""

    enabled: bool = False
    key_file: Path | None = Field(
        default=None,
        description="secret file (32+ bytes of text) every replica reads: the keyed digests "
        "that name throttle keys in the buckets are made with it",
    )
    throttle_bucket: str = Field(default="callout_throttle", pattern=_BUCKET)
    revocations_bucket: str = Field(default="callout_revocations", pattern=_BUCKET)
    decisions_bucket: str = Field(default="callout_decisions", pattern=_BUCKET)
    sessions_bucket: str = Field(default="callout_sessions", pattern=_BUCKET)
    sessions_max_age: Seconds = Field(
        default=86400.0,
        gt=0,
        description="the sessions bucket's max age: bounds an entry nobody deleted (entries "
        "are also deleted once their JWT expires)",
    )
    replicas: int = Field(
        default=3, ge=1, le=5, description="bucket replicas (R3 survives one node)"
    )
    create_buckets: bool = Field(
        default=True, description="create missing buckets (needs STREAM.CREATE permission)"
    )
    timeout: Seconds = Field(default=0.5, description="bound on each KV operation")
    confirm_budget: Seconds = Field(
        default=0.2,
        description="how long an expensive login waits for its throttle count to be written "
        "with the other replicas' (0: never; then concurrent guesses may pass once per replica)",
    )
    check_interval: Seconds = Field(
        default=1.0, description="how often KV is probed, and reopened after an outage"
    )
    max_pending: int = Field(
        default=10_000, ge=1, le=1_000_000, description="keys waiting to be written (bound)"
    )
    max_mirrored: int = Field(
        default=60_000, ge=100, le=10_000_000, description="keys of other replicas kept (bound)"
    )

    @model_validator(mode="after")
    def _needs_key(self) -> StateSettings:
        if self.enabled and self.key_file is None:
            raise ValueError(
                "enabled shared state needs key_file: a secret file with the same 32+ "
                "characters on every replica (e.g. `openssl rand -hex 32`)"
            )
        buckets = (
            self.throttle_bucket,
            self.revocations_bucket,
            self.decisions_bucket,
            self.sessions_bucket,
        )
        if len(set(buckets)) < len(buckets):
            raise ValueError(
                "throttle_bucket, revocations_bucket, decisions_bucket and sessions_bucket "
                "must differ"
            )
        return self
