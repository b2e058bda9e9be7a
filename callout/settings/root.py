"""The root of the settings tree, and the checks that need the whole tree (each mode's
requirements)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from callout.protocol.nkeys import KeyRole, is_public_key
from callout.settings.backends import BackendSettings, default_backends
from callout.settings.keys import KeySettings, OperatorSettings
from callout.settings.nats import NatsSettings
from callout.settings.sections import (
    AuditSettings,
    DecisionCacheSettings,
    HttpSettings,
    LogSettings,
    PolicySettings,
    ReloadSettings,
    ServiceSettings,
    ThrottleSettings,
)
from callout.settings.sessions import SessionsSettings
from callout.settings.state import StateSettings
from callout.settings.versions import ServerVersionSettings


class Mode(StrEnum):
    CONFIG = "config"
    OPERATOR = "operator"


class Settings(BaseModel):
    """The whole configuration of one service process (built by `load_settings`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Mode.CONFIG
    nats: NatsSettings = NatsSettings()
    keys: KeySettings = KeySettings()
    accounts: list[str] = Field(
        default_factory=list, description="config mode: account names users may be placed into"
    )
    system_account: str | None = Field(
        default=None,
        description="never a target unless the policy allows it explicitly; as the server config "
        "writes it: config mode the account name, operator mode its public key",
    )
    operator: OperatorSettings | None = Field(
        default=None, description="operator mode: the callout account and the target accounts"
    )
    policy: PolicySettings = PolicySettings()
    service: ServiceSettings = ServiceSettings()
    log: LogSettings = LogSettings()
    backends: list[BackendSettings] = Field(
        default_factory=default_backends,
        min_length=1,
        description="the credential backends, in the order they are asked",
    )
    decision_cache: DecisionCacheSettings = DecisionCacheSettings()
    http: HttpSettings = HttpSettings()
    audit: AuditSettings = AuditSettings()
    throttle: ThrottleSettings = ThrottleSettings()
    reload: ReloadSettings = ReloadSettings()
    sessions: SessionsSettings = SessionsSettings()
    server_versions: ServerVersionSettings = ServerVersionSettings()
    state: StateSettings = StateSettings()

    @field_validator("backends")
    @classmethod
    def _one_of_each(cls, backends: list[BackendSettings]) -> list[BackendSettings]:
        types = [backend.type for backend in backends]
        for kind in set(types):
            if types.count(kind) > 1:
                raise ValueError(f"backend type {kind!r} is listed twice")
        return backends

    @model_validator(mode="after")
    def _mode_requirements(self) -> Settings:
        problems = (
            _operator_problems(self) if self.mode is Mode.OPERATOR else _config_problems(self)
        )
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _config_problems(settings: Settings) -> list[str]:
    problems = []
    if settings.keys.issuer_seed_file is None:
        problems.append("keys.issuer_seed_file: config mode needs the auth_callout issuer seed")
    if not settings.accounts:
        problems.append("accounts: config mode needs the account names users may be placed into")
    if settings.operator is not None:
        problems.append("operator: this section needs mode: operator")
    return problems


def _operator_problems(settings: Settings) -> list[str]:
    problems = []
    if settings.operator is None:
        problems.append("operator: operator mode needs this section (callout_account, accounts)")
    if settings.keys.issuer_seed_file is not None:
        problems.append(
            "keys.issuer_seed_file: config mode only; in operator mode each account's "
            "operator.accounts.NAME.signing_seed_file signs"
        )
    if settings.accounts:
        problems.append(
            "accounts: config mode only; in operator mode list the accounts under "
            "operator.accounts with their keys"
        )
    if settings.system_account is None or not is_public_key(
        settings.system_account, KeyRole.ACCOUNT
    ):
        problems.append(
            "system_account: operator mode needs the system account's public key (as the server "
            "config's system_account), so that no user is placed there by accident"
        )
    if settings.nats.creds_file is None:
        problems.append(
            "nats.creds_file: operator mode needs the creds of an auth_users member of the "
            "callout account (the service's own login)"
        )
    return problems
