"""The one settings tree: a YAML file, then ``CALLOUT_*`` environment variables over it.

Built once at start-up and passed down. Unknown keys are errors. Secrets are never values in
this tree: it names *files* (seeds, passwords, creds) that `callout.secrets` reads.
Precedence: explicit arguments > environment (``CALLOUT_NATS__SERVERS``) > YAML > defaults.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from callout.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"500ms"``, ``"15m"``, ``"1h"`` or ``"7d"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError("a duration is a number of seconds or a string like '30s', '5m', '1h'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mode(StrEnum):
    CONFIG = "config"
    OPERATOR = "operator"


class DenyMode(StrEnum):
    """How a denial is answered: a signed error (fast, reason in the server log) or silence."""

    REPLY = "reply"
    DROP = "drop"


class NatsSettings(_Section):
    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1)
    user: str | None = None
    password_file: Path | None = None
    creds_file: Path | None = None
    name: str = "nats-auth-callout"
    subject: str = "$SYS.REQ.USER.AUTH"
    queue_group: str = "auth-callout"
    connect_timeout: Duration = 2.0
    reconnect_wait: Duration = 1.0
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> NatsSettings:
        if self.creds_file and (self.user or self.password_file):
            raise ValueError("use either creds_file or user/password_file, not both")
        if self.password_file and not self.user:
            raise ValueError("password_file needs user")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self


class KeySettings(_Section):
    issuer_seed_file: Path = Field(
        description="account seed (SA...) that signs user JWTs and responses"
    )
    xkey_seed_file: Path | None = Field(
        default=None, description="curve seed (SX...); when set, requests must be encrypted"
    )


class PolicySettings(_Section):
    directory: Path = Path("policies")


class ServiceSettings(_Section):
    max_concurrency: int = Field(default=256, ge=1, le=100_000)
    max_pending: int = Field(default=4096, ge=1, le=1_000_000)
    password_workers: int | None = Field(default=None, ge=1, le=256)
    deny: DenyMode = DenyMode.REPLY
    error_message: str = Field(default="not authorized", min_length=1, max_length=200)
    drain_timeout: Duration = 10.0
    request_leeway: Duration = 0.0


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class HttpSettings(_Section):
    """The probe and metrics endpoint (`/livez`, `/readyz`, `/metrics`) on one port."""

    enabled: bool = True
    # Loopback by default; containers set 0.0.0.0 so the kubelet can probe the pod IP.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class AuditJetStreamSettings(_Section):
    """Also publish audit events to a JetStream stream (acked, bounded, never blocking)."""

    enabled: bool = False
    subject: str = Field(default="callout.audit", min_length=1)
    stream: str | None = Field(
        default=None, description="expected stream name; the publish fails if another stream"
    )
    buffer: int = Field(default=10_000, ge=1, le=10_000_000)
    publish_timeout: Duration = 2.0


class AuditSettings(_Section):
    log: bool = Field(default=True, description="write audit events to the log (stdout)")
    jetstream: AuditJetStreamSettings = AuditJetStreamSettings()


class ThrottleSettings(_Section):
    """Failed logins per principal and per client address in a sliding window."""

    enabled: bool = True
    window: Duration = 60.0
    max_failures_per_principal: int = Field(default=10, ge=1)
    max_failures_per_ip: int = Field(default=100, ge=1)
    max_tracked: int = Field(default=100_000, ge=100, description="memory bound (keys)")


class ReloadSettings(_Section):
    """Watching the policy and key directories; SIGHUP reloads regardless."""

    watch: bool = True
    debounce: Duration = 0.2
    force_polling: bool = False
    poll_interval: Duration = 0.3


class Settings(BaseSettings):
    """The whole configuration of one service process."""

    model_config = SettingsConfigDict(
        env_prefix="CALLOUT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    mode: Mode = Mode.CONFIG
    nats: NatsSettings = NatsSettings()
    keys: KeySettings
    accounts: list[str] = Field(
        min_length=1, description="config mode: account names users may be placed into"
    )
    system_account: str | None = Field(
        default=None, description="never a target unless the policy allows it explicitly"
    )
    policy: PolicySettings = PolicySettings()
    service: ServiceSettings = ServiceSettings()
    log: LogSettings = LogSettings()
    http: HttpSettings = HttpSettings()
    audit: AuditSettings = AuditSettings()
    throttle: ThrottleSettings = ThrottleSettings()
    reload: ReloadSettings = ReloadSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _format_errors(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {path}: {item['msg']}")
    return "\n".join(lines)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``path`` (YAML), the environment and ``overrides``; else `ConfigError`."""
    data = _read_yaml(path) if path is not None else {}
    data.update(overrides)
    source = str(path) if path is not None else "settings"
    try:
        return _settings_from(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(error, source)) from None


def _settings_from(data: dict[str, Any]) -> Settings:
    # The YAML document ranks below the environment, so it enters as the last source.
    class _FromData(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return env_settings, InitSettingsSource(settings_cls, data)

    return _FromData()
