"""``server_versions``: what the service does with a request from a nats-server version that
lacks a fix for an auth-relevant advisory (`callout.protocol.versions`)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from callout.protocol.versions import parse_version
from callout.settings.base import Section


class VersionAction(StrEnum):
    """``warn``: answer as usual, log once per server version; ``deny``: refuse every login
    with a signed deny (``server_version_not_accepted``); ``ignore``: only count it."""

    WARN = "warn"
    DENY = "deny"
    IGNORE = "ignore"


class ServerVersionSettings(Section):
    """Which nats-server versions the service answers for (README "Server versions")."""

    advisories: VersionAction = Field(
        default=VersionAction.WARN,
        description="a server version below the fix of an advisory: warn, deny or ignore",
    )
    minimum: str | None = Field(
        default=None,
        description="deny every login through a server older than this, e.g. '2.12.7'",
    )

    @field_validator("minimum")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None and parse_version(value) is None:
            raise ValueError(f"{value!r} is not a version like '2.12.7'")
        return value
