"""The one settings tree: a YAML file, then ``CALLOUT_*`` environment variables over it.

Built once at start-up and passed down. Unknown keys are errors. Secrets are never values in
this tree: it names *files* (seeds, passwords, creds) that `callout.secretfiles` reads.
Precedence: explicit arguments > environment (``CALLOUT_NATS__SERVERS``) > YAML > defaults
(`callout.settings.sources` merges them and names the source of every error).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from callout.errors import ConfigError
from callout.protocol.nkeys import Role, is_public_key
from callout.settings import sources as _sources
from callout.settings.versions import ServerVersionSettings

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


_NATS_SCHEMES = ("nats", "tls", "ws", "wss")
_USERINFO = re.compile(r"[^/@]+@")


def redact_url(url: str) -> str:
    """``url`` without ``user:password@``: safe to log."""
    return _USERINFO.sub("***@", url)


def _nats_url(url: str) -> str:
    parsed = urlsplit(url)
    problem = None
    if "://" not in url or parsed.scheme not in _NATS_SCHEMES:
        problem = f"starts with one of {', '.join(s + '://' for s in _NATS_SCHEMES)}"
    elif not parsed.hostname:
        problem = "names a host"
    else:
        try:
            parsed.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            problem = "has a port number after the colon"
    if problem is not None:
        raise ValueError(
            f"{redact_url(url)!r} is not a NATS URL: a URL {problem}, e.g. nats://host:4222"
        )
    return url


class NatsSettings(_Section):
    servers: list[Annotated[str, AfterValidator(_nats_url)]] = Field(
        default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1
    )
    user: str | None = None
    password_file: Path | None = None
    creds_file: Path | None = None
    name: str = "nats-auth-callout"
    subject: str = "$SYS.REQ.USER.AUTH"
    queue_group: str = "auth-callout"
    connect_timeout: Duration = 2.0
    # Short: after a server restart the service must be subscribed again before the clients'
    # own reconnects (nats.go: 2 s) arrive, or their requests find no responder.
    reconnect_wait: Duration = 0.25
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
    issuer_seed_file: Path | None = Field(
        default=None,
        description="config mode: account seed (SA...) that signs user JWTs and responses",
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
    expensive_concurrency: int | None = Field(
        default=None, ge=1, le=1024, description="expensive-lane slots; default password_workers"
    )
    expensive_queue: int = Field(default=512, ge=0, le=1_000_000)
    deny: DenyMode = DenyMode.REPLY
    error_message: str = Field(default="not authorized", min_length=1, max_length=200)
    drain_timeout: Duration = 10.0
    request_leeway: Duration = 0.0


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


def _account_key(value: str) -> str:
    if not is_public_key(value, Role.ACCOUNT):
        raise ValueError("not an account public key (56 characters starting with A)")
    return value


AccountKey = Annotated[str, AfterValidator(_account_key)]


class AccountKeys(_Section):
    """Operator mode: an account the service signs for, and the seed it signs with."""

    public_key: AccountKey = Field(description="the account's public key (A...)")
    signing_seed_file: Path = Field(
        description="the seed the service signs with: the account's own seed or one of its "
        "signing keys' seeds (SA...)"
    )
    signing_keys: list[AccountKey] = Field(
        default_factory=list,
        description="the account's signing keys as its JWT lists them (nsc describe account); "
        "during a rotation both the old and the new key",
    )

    @model_validator(mode="after")
    def _distinct_keys(self) -> AccountKeys:
        if len(set(self.signing_keys)) != len(self.signing_keys):
            raise ValueError("signing_keys lists a key twice")
        if self.public_key in self.signing_keys:
            raise ValueError("signing_keys must not repeat public_key (the account key)")
        return self


class TargetAccount(AccountKeys):
    scoped: bool = Field(
        default=False,
        description="the signing seed is a scoped signing key: user JWTs carry no permissions "
        "or limits and the scope's template applies",
    )

    @model_validator(mode="after")
    def _scoped_needs_a_signing_key(self) -> TargetAccount:
        if self.scoped and not self.signing_keys:
            raise ValueError(
                "scoped: true needs signing_keys: only a signing key can be scoped, never the "
                "account key itself"
            )
        return self


class OperatorSettings(_Section):
    """Operator (decentralized) mode: who signs responses, and the accounts users go to."""

    callout_account: AccountKeys = Field(
        description="the account whose JWT has the authorization (auth callout) member; its key "
        "or one of its signing keys signs the responses"
    )
    accounts: dict[str, TargetAccount] = Field(
        min_length=1, description="account NAME (as policies write it) -> keys"
    )

    @model_validator(mode="after")
    def _one_name_per_account(self) -> OperatorSettings:
        seen: dict[str, str] = {}
        for name, account in self.accounts.items():
            if not name.strip() or name != name.strip():
                raise ValueError(f"account name {name!r}: empty or surrounded by whitespace")
            other = seen.setdefault(account.public_key, name)
            if other != name:
                raise ValueError(f"accounts {other!r} and {name!r} have the same public_key")
        return self


CredentialKind = Literal["password", "nkey", "token", "jwt"]
_TEMPLATE_NAME = r"^[A-Za-z0-9_-]+$"  # usable as {{user.attr.NAME}}
_MAX_OUTBOUND = 5.0  # seconds; outbound calls must stay well under the server's auth timeout


def _positive(value: float, what: str) -> None:
    if not 0 < value <= _MAX_OUTBOUND:
        raise ValueError(f"{what} must be more than 0 and at most {_MAX_OUTBOUND:g}s")


def _is_loopback(host: str | None) -> bool:
    return host in ("localhost", "127.0.0.1", "::1")


class StaticBackendSettings(_Section):
    """Users of the policy files: argon2id/bcrypt passwords and nkeys."""

    type: Literal["static"]
    accepts: tuple[Literal["password", "nkey"], ...] = Field(("password", "nkey"), min_length=1)


class LdapGroupSettings(_Section):
    """How group membership is read: ``member`` searches groups, ``memberof`` reads the
    user's ``memberOf`` (the overlay must exist), ``none`` reads no groups."""

    mode: Literal["member", "memberof", "none"] = "member"
    base: str | None = Field(default=None, description="search base of groups (member mode)")
    filter: str = "(&(objectClass=groupOfNames)(member={dn}))"
    nested: bool = Field(default=False, description="also the groups of groups, to max_depth")
    max_depth: int = Field(default=5, ge=1, le=20)
    names: Literal["dn", "cn"] = Field(
        default="dn", description="what the policy's groups: keys name: the DN or the cn"
    )


class LdapBackendSettings(_Section):
    """Search-then-bind against a directory, as a read-only service account."""

    type: Literal["ldap"]
    accepts: tuple[Literal["password"], ...] = Field(("password",), min_length=1)
    urls: list[str] = Field(min_length=1, description="ldap:// or ldaps:// URLs, tried in order")
    start_tls: bool = False
    ca_file: Path | None = Field(default=None, description="CA bundle; default: system CAs")
    allow_plaintext: bool = Field(
        default=False, description="permit ldap:// without StartTLS (passwords in clear)"
    )
    bind_dn: str = Field(min_length=1, description="the read-only service account")
    bind_password_file: Path
    user_base: str = Field(min_length=1)
    user_filter: str = "(&(objectClass=inetOrgPerson)(uid={user}))"
    login_attribute: str = Field(default="uid", pattern=_TEMPLATE_NAME)
    attributes: list[Annotated[str, Field(pattern=_TEMPLATE_NAME)]] = Field(default_factory=list)
    groups: LdapGroupSettings = LdapGroupSettings()
    connect_timeout: Duration = 0.5
    timeout: Duration = Field(default=0.5, description="per LDAP operation")
    deadline: Duration = Field(default=1.5, description="for a whole login")
    pool_size: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _coherent(self) -> LdapBackendSettings:
        for url in self.urls:
            scheme = url.partition("://")[0].lower()
            if scheme not in ("ldap", "ldaps"):
                raise ValueError(f"{url!r}: an LDAP URL starts with ldap:// or ldaps://")
            if scheme == "ldaps" and self.start_tls:
                raise ValueError(f"{url!r}: ldaps:// is already TLS; do not set start_tls")
            if scheme == "ldap" and not self.start_tls and not self.allow_plaintext:
                raise ValueError(
                    f"{url!r} sends passwords in clear: use ldaps://, start_tls: true,"
                    " or allow_plaintext: true"
                )
        if "{user}" not in self.user_filter:
            raise ValueError("user_filter must contain {user}")
        if self.groups.mode == "member":
            if not self.groups.base:
                raise ValueError("groups.base is required when groups.mode is member")
            if "{dn}" not in self.groups.filter:
                raise ValueError("groups.filter must contain {dn}")
        _positive(self.connect_timeout, "connect_timeout")
        _positive(self.timeout, "timeout")
        _positive(self.deadline, "deadline")
        return self


class TokenBackendSettings(_Section):
    """Opaque API tokens ``<prefix>_<id>_<secret>``, stored in the policy as HMAC-SHA256."""

    type: Literal["token"]
    accepts: tuple[Literal["token"], ...] = Field(("token",), min_length=1)
    prefix: str = Field(default="nac", pattern=r"^[a-z][a-z0-9]{1,15}$")
    pepper_file: Path = Field(description="the HMAC key of the token hashes (a secret)")


JwsAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class OidcIssuerSettings(_Section):
    """One trusted token issuer: where its keys are and what its tokens must say."""

    issuer: str = Field(min_length=1, description="the exact iss claim")
    audience: list[str] = Field(min_length=1, description="aud must hold one of these")
    jwks_url: str | None = None
    jwks_file: Path | None = None
    ca_file: Path | None = Field(default=None, description="CA bundle for jwks_url")
    algorithms: tuple[JwsAlgorithm, ...] = Field(("RS256", "ES256"), min_length=1)
    required_claims: tuple[str, ...] = ("exp", "iat", "iss", "aud", "sub")
    leeway: Duration = Field(default=30.0, description="clock skew allowed, at most 60s")
    principal_claim: str = "sub"
    group_claims: tuple[str, ...] = Field(
        ("groups",), description="claim paths (a.b.c) whose values are groups"
    )
    group_prefix: str = Field(default="", description="prepended to every group of this issuer")
    attribute_claims: dict[Annotated[str, Field(pattern=_TEMPLATE_NAME)], str] = Field(
        default_factory=dict, description="{{user.attr.NAME}} -> claim path"
    )

    @model_validator(mode="after")
    def _coherent(self) -> OidcIssuerSettings:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("set exactly one of jwks_url and jwks_file")
        if self.jwks_url is not None:
            scheme, _, rest = self.jwks_url.partition("://")
            host = rest.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
            if scheme != "https" and not (scheme == "http" and _is_loopback(host)):
                raise ValueError("jwks_url must be https:// (http:// only to localhost)")
        if "exp" not in self.required_claims:
            raise ValueError("required_claims must contain exp: tokens must expire")
        if self.leeway > 60:  # noqa: PLR2004 - docs/operations.md#tokens
            raise ValueError("leeway must be at most 60s")
        return self


class OidcBackendSettings(_Section):
    """JWT bearer tokens (OIDC, Kubernetes service accounts) checked against a JWKS."""

    type: Literal["oidc"]
    accepts: tuple[Literal["jwt"], ...] = Field(("jwt",), min_length=1)
    issuers: list[OidcIssuerSettings] = Field(min_length=1)
    jwks_ttl: Duration = Field(default=600.0, description="how long fetched keys are used")
    jwks_refresh_min_interval: Duration = Field(
        default=30.0, description="least time between fetches for an unknown kid"
    )
    fetch_timeout: Duration = 1.0

    @model_validator(mode="after")
    def _coherent(self) -> OidcBackendSettings:
        names = [issuer.issuer for issuer in self.issuers]
        if len(set(names)) != len(names):
            raise ValueError("each issuer may be listed once")
        _positive(self.fetch_timeout, "fetch_timeout")
        return self


BackendSettings = Annotated[
    StaticBackendSettings | LdapBackendSettings | TokenBackendSettings | OidcBackendSettings,
    Field(discriminator="type"),
]


def _default_backends() -> list[BackendSettings]:
    return [StaticBackendSettings(type="static")]


class DecisionCacheSettings(_Section):
    """Successful password/LDAP logins remembered briefly (reconnect storms); ttl 0 = off."""

    ttl: Duration = 60.0
    max_entries: int = Field(default=10_000, ge=1, le=10_000_000)


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
    """Failed logins per (principal, address), per address, and per principal from addresses
    it has not logged in from recently; each a bucket draining over ``window``."""

    enabled: bool = True
    window: Duration = 60.0
    max_failures_per_principal: int = Field(default=10, ge=1)
    max_failures_per_ip: int = Field(default=100, ge=1)
    max_failures_per_principal_unfamiliar: int = Field(default=100, ge=1)
    familiar_for: Duration = 7 * 86400.0
    max_tracked: int = Field(default=20_000, ge=100, description="memory bound (keys per table)")


class ReloadSettings(_Section):
    """Watching the policy and key directories; SIGHUP reloads regardless."""

    watch: bool = True
    debounce: Duration = 0.2
    force_polling: bool = False
    poll_interval: Duration = 0.3


class SessionsSettings(_Section):
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
    kick_timeout: Duration = 1.0
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
        default_factory=_default_backends,
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
    if settings.system_account is None or not is_public_key(settings.system_account, Role.ACCOUNT):
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


def load_settings(
    path: Path | None = None, *, environ: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Settings from ``path`` (YAML), then ``CALLOUT_*`` variables of ``environ`` (default: the
    process environment) over it, then ``overrides`` over both; else `ConfigError` naming the
    source (``file:line``, the variable, or the argument) of each problem."""
    sources = _sources.read_yaml(path) if path is not None else _sources.Sources()
    env = _sources.read_environment(Settings, os.environ if environ is None else environ)
    sources = _sources.merge(sources, env)
    sources = _sources.over_explicit(sources, _sources.explicit(overrides))
    try:
        return Settings.model_validate(sources.data)
    except ValidationError as error:
        default = str(path) if path is not None else "settings"
        raise ConfigError(_sources.format_errors(error, sources, Settings, default)) from None
