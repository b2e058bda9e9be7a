"""Live sessions: the registry of issued grants and the system-account login it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from callout.settings.base import Section
from callout.settings.durations import Seconds
from callout.settings.nats import NatsSettings


class SessionsSettings(Section):
    """Live sessions (README "Live sessions"): a registry of the grants we issued, revoked when
    a reload decides them differently. Needs a login to the system account (``system``)."""

    enabled: bool = False
    system: NatsSettings | None = Field(
        default=None,
        description="the system-account login (servers default to nats.servers)",
    )
    revocation: Literal["act", "report"] = Field(
        default="act", description="act: kick the sessions a reload revokes; report: log only"
    )
    max_sessions: int = Field(default=100_000, ge=1, le=10_000_000, description="memory bound")
    max_revocations_per_reload: int = Field(
        default=100, ge=0, description="a reload revoking more kicks none of them (held back)"
    )
    kick_rate: float = Field(default=20.0, gt=0, le=10_000, description="kicks per second")
    kick_timeout: Seconds = 1.0
    deny_list_file: Path | None = Field(
        default=None,
        description="where the deny list is kept; default <policy.directory>/deny-list.json",
    )
    max_deny_entries: int = Field(default=10_000, ge=1, le=1_000_000)
    api_subject: str = Field(
        default="callout.sessions",
        pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
        description="prefix of the list/kick/revoke endpoints (<prefix>.list, ...)",
    )

    @model_validator(mode="after")
    def _needs_system_login(self) -> SessionsSettings:
        if self.enabled and self.system is None:
            raise ValueError(
                "enabled sessions need system: a login to the system account "
                "(user/password_file or creds_file) to see connect events and kick"
            )
        return self
