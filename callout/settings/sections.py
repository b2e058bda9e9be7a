"""The service's own sections: policy, service (bounds, denials, drain), log, decision cache,
http probes, audit, throttle, reload."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from callout.settings.base import Section
from callout.settings.durations import Seconds
from callout.settings.policysource import PolicyKvSettings, PolicySource


class DenyMode(StrEnum):
    """How a denial is answered: a signed error (fast, reason in the server log) or silence."""

    REPLY = "reply"
    DROP = "drop"


class PolicySettings(Section):
    directory: Path = Path("policies")
    source: PolicySource = Field(
        default=PolicySource.FILES, description="files: the directory; kv: the bucket policy.kv"
    )
    kv: PolicyKvSettings = PolicyKvSettings()


class ServiceSettings(Section):
    max_concurrency: int = Field(default=256, ge=1, le=100_000)
    max_pending: int = Field(default=4096, ge=1, le=1_000_000)
    password_workers: int | None = Field(default=None, ge=1, le=256)
    expensive_concurrency: int | None = Field(
        default=None, ge=1, le=1024, description="expensive-lane slots; default password_workers"
    )
    expensive_queue: int = Field(default=512, ge=0, le=1_000_000)
    deny: DenyMode = DenyMode.REPLY
    error_message: str = Field(default="not authorized", min_length=1, max_length=200)
    drain_timeout: Seconds = 10.0
    request_leeway: Seconds = 0.0
    event_loop: Literal["asyncio", "uvloop"] = Field(
        default="asyncio", description="uvloop needs the extra: nats-auth-callout[uvloop]"
    )


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class DecisionCacheSettings(Section):
    """Successful password/LDAP logins remembered briefly (reconnect storms); ttl 0 = off."""

    ttl: Seconds = 60.0
    max_entries: int = Field(default=10_000, ge=1, le=10_000_000)


class HttpSettings(Section):
    """The probe and metrics endpoint (`/livez`, `/readyz`, `/metrics`) on one port."""

    enabled: bool = True
    # Loopback by default; containers set 0.0.0.0 so the kubelet can probe the pod IP.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class AuditJetStreamSettings(Section):
    """Also publish audit events to a JetStream stream (acked, bounded, never blocking)."""

    enabled: bool = False
    subject: str = Field(default="callout.audit", min_length=1)
    stream: str | None = Field(
        default=None, description="expected stream name; the publish fails if another stream"
    )
    buffer: int = Field(default=10_000, ge=1, le=10_000_000)
    publish_timeout: Seconds = 2.0


class AuditSettings(Section):
    log: bool = Field(default=True, description="write audit events to the log (stdout)")
    jetstream: AuditJetStreamSettings = AuditJetStreamSettings()


_LIMITS = (
    "max_failures_per_principal",
    "max_failures_per_ip",
    "max_failures_per_principal_unfamiliar",
)
_FINEST_STEP = 1e-5  # seconds; a wall-clock time (~1.7e9) as a float resolves ~2.4e-7


class ThrottleSettings(Section):
    """Failed logins per (principal, address), per address, and per principal from addresses
    it has not logged in from recently; each a bucket draining over ``window``."""

    enabled: bool = True
    window: Seconds = 60.0
    max_failures_per_principal: int = Field(default=10, ge=1)
    max_failures_per_ip: int = Field(default=100, ge=1)
    max_failures_per_principal_unfamiliar: int = Field(default=100, ge=1)
    familiar_for: Seconds = 7 * 86400.0
    max_tracked: int = Field(default=20_000, ge=100, description="memory bound (keys per table)")

    @model_validator(mode="after")
    def _countable(self) -> ThrottleSettings:
        """Each attempt adds ``window / limit`` seconds to a bucket held as a wall-clock time;
        a step below what such a float resolves would count nothing (fail open)."""
        for name in _LIMITS:
            limit: int = getattr(self, name)
            if self.enabled and self.window / limit < _FINEST_STEP:
                most = round(self.window / _FINEST_STEP)
                raise ValueError(
                    f"{name}: {limit} failures per {self.window:g} s window is finer than the "
                    f"throttle counts (at most window x 100,000 = {most}); lower it, lengthen "
                    "throttle.window, or set throttle.enabled: false"
                )
        return self


class ReloadSettings(Section):
    """Watching the policy and key directories; SIGHUP reloads regardless."""

    watch: bool = True
    debounce: Seconds = 0.2
    force_polling: bool = False
    poll_interval: Seconds = 0.3
