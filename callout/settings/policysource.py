"""Where replicas take their policy from: the policy directory (default) or a JetStream KV
bucket that `callout policy push` writes and every replica watches."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from callout.settings.base import Section
from callout.settings.durations import Seconds


class PolicySource(StrEnum):
    FILES = "files"
    KV = "kv"


class PolicyKvSettings(Section):
    """The bucket (in the service's own account) holding the policy bundle, one key."""

    bucket: str = Field(
        default="callout_policy",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="KV bucket name: letters, digits, '_' and '-'",
    )
    replicas: int = Field(
        default=1, ge=1, le=5, description="the bucket's replicas when `policy push` creates it"
    )
    history: int = Field(
        default=64, ge=2, le=64, description="revisions kept for `policy history` and rollback"
    )
    initial_wait: Seconds = Field(
        default=5.0, description="at start-up, how long to wait for the bucket's bundle"
    )
    check_interval: Seconds = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="how often a replica reads the bucket's latest revision",
    )
