"""The policy file format as pydantic models: what a security team may write, and nothing else.

Every model forbids unknown keys and is strict (``"true"`` is not a boolean). The JSON schema
for editors is generated from these models (`callout.policy.schema`). Cross-entry rules
(role references, accounts, duplicates across files) live in `callout.policy.compiler`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from callout.policy.clientids import check_client_id
from callout.policy.fields import (
    Cidr,
    ConnectionType,
    DurationWithUnit,
    Name,
    PasswordHash,
    PublishSubject,
    RoleName,
    SubscribeSubject,
    TimeOfDay,
    Timestamp,
    Token,
    TokenHash,
    TokenId,
    UserNkey,
    Zone,
)
from callout.policy.intent_models import (
    JetStreamIntent,
    KvIntent,
    ObjectStoreIntent,
    ServiceIntent,
)

MqttClientId = Annotated[str, AfterValidator(check_client_id)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PublishRules(_Model):
    """Subjects a user may publish to; ``deny`` wins over ``allow``."""

    allow: list[PublishSubject] = Field(default_factory=list)
    deny: list[PublishSubject] = Field(default_factory=list)


class SubscribeRules(_Model):
    """Subjects a user may subscribe to, optionally ``"subject queue"``; ``deny`` wins."""

    allow: list[SubscribeSubject] = Field(default_factory=list)
    deny: list[SubscribeSubject] = Field(default_factory=list)


class Response(_Model):
    """Allows replying to requests received, without a publish grant on the reply subject."""

    max: int = Field(1, ge=1, description="replies allowed per request received")
    ttl: DurationWithUnit = Field(
        timedelta(minutes=2), description="how long a reply stays allowed"
    )


class TimeWindow(_Model):
    """A daily window ``start``..``end`` (``HH:MM:SS``); it wraps midnight if end < start."""

    start: TimeOfDay
    end: TimeOfDay

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("start equals end: the window is empty")
        return self


LintCode = Literal[
    "over-broad",
    "legacy-hash",
    "weak-hash",
    "unused-role",
    "unreachable-rule",
    "client-name",
    "times-utc",
    "expiry-capped",
    "in-process",
    "system-account",
    "unsafe-name",
    "mqtt-client-id",
]
Acknowledgements = dict[LintCode, Annotated[str, StringConstraints(min_length=1)]]


class Grants(_Model):
    """What roles and users share: permissions, the target account, and login conditions."""

    description: str = ""
    acknowledge: Acknowledgements = Field(
        default_factory=dict,
        description="lint warnings accepted on purpose, by code, each with the reason why",
    )
    publish: PublishRules | None = None
    subscribe: SubscribeRules | None = None
    response: Response | None = None
    account: Token | None = Field(None, description="target account (name or A... key)")
    max_expiry: DurationWithUnit | None = Field(None, description="longest user-JWT lifetime")
    src: list[Cidr] | None = Field(None, min_length=1, description="client networks (CIDR)")
    connection_types: list[ConnectionType] | None = Field(None, min_length=1)
    times: list[TimeWindow] | None = Field(None, min_length=1)
    times_location: Zone | None = Field(None, description="IANA zone of times; default UTC")
    mqtt_client_id: list[MqttClientId] | None = Field(
        None,
        min_length=1,
        description="MQTT clients must use a client id matching one of these patterns"
        " ({{user.name}}-*); templates match literally, * matches anything",
    )
    # Grants by intent, compiled to subjects by callout.policy.intents.
    jetstream: list[JetStreamIntent] = Field(default_factory=list, description="stream use")
    kv: list[KvIntent] = Field(default_factory=list, description="key-value bucket use")
    object_store: list[ObjectStoreIntent] = Field(default_factory=list)
    service: list[ServiceIntent] = Field(default_factory=list, description="request/reply")
    private_inbox: bool = Field(False, description="an inbox prefix of this identity's own")

    @model_validator(mode="after")
    def _location_needs_times(self) -> Grants:
        if self.times_location is not None and self.times is None:
            raise ValueError("times_location is set but there are no times")
        return self


class Role(Grants):
    """A reusable bundle of grants, referenced by users and groups."""

    allow_system_account: bool = Field(
        False, description="the pipeline may place holders of this role in the system account"
    )
    proxy_required: bool = Field(
        False, description="holders must connect through a proxy nats-server trusts (2.12+)"
    )


class User(Grants):
    """A static user, logging in with a password hash or an nkey (exactly one)."""

    password: PasswordHash | None = Field(None, repr=False)
    nkey: UserNkey | None = None
    roles: list[RoleName] = Field(default_factory=list)
    expiry: DurationWithUnit | None = Field(
        None, description="user-JWT lifetime; default from defaults"
    )
    tags: list[Token] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_credential(self) -> User:
        if (self.password is None) == (self.nkey is None):
            raise ValueError("a user needs exactly one of password or nkey")
        return self


class ApiToken(Grants):
    """An opaque API token (``<prefix>_<id>_<secret>``), keyed by its id."""

    hash: TokenHash = Field(repr=False, description="hmac-sha256:... from `callout token new`")
    owner: str = Field(min_length=1, description="who answers for this token")
    expires: Timestamp | None = Field(None, description="the token is refused from then on")
    roles: list[RoleName] = Field(default_factory=list)
    expiry: DurationWithUnit | None = Field(
        None, description="user-JWT lifetime; default from defaults"
    )
    tags: list[Token] = Field(default_factory=list)


class Group(_Model):
    """Maps an external (LDAP/OIDC) group to roles, or refuses its members (``deny``)."""

    description: str = ""
    roles: list[RoleName] = Field(default_factory=list)
    account: Token | None = None
    deny: bool = Field(False, description="members are refused, whatever their other groups")

    acknowledge: Acknowledgements = Field(
        default_factory=dict,
        description="lint warnings accepted on purpose, by code, each with the reason why",
    )

    @model_validator(mode="after")
    def _roles_or_deny(self) -> Group:
        if self.deny and (self.roles or self.account):
            raise ValueError("a deny group grants nothing: remove roles and account")
        if not self.deny and not self.roles:
            raise ValueError("a group needs at least one role (or deny: true)")
        return self


class Defaults(_Model):
    """Fallbacks for every user and group."""

    account: Token | None = Field(None, description="target account when nothing else says")
    expiry: DurationWithUnit | None = Field(None, description="user-JWT lifetime; default 1h")
    max_expiry: DurationWithUnit | None = None


class PolicyFile(_Model):
    """One policy file. Every file of a directory is merged into one policy."""

    version: Literal[1] = Field(description="format version; always 1")
    defaults: Defaults | None = None
    roles: dict[RoleName, Role] = Field(default_factory=dict)
    users: dict[Name, User] = Field(default_factory=dict)
    groups: dict[Name, Group] = Field(default_factory=dict)
    tokens: dict[TokenId, ApiToken] = Field(default_factory=dict)
