"""Decisions are values: an allow with its grant, or a deny with a closed reason code.

`Reason` feeds logs, audit and metrics; the text sent to nats-server stays generic.
`DropReason` names why a request got no reply at all; `Lane` says how costly deciding is;
`BackendName` names the backends an `Identity` comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, str] = MappingProxyType({})


class Reason(StrEnum):
    """Why a login was allowed or denied. A closed set: add members, never free text."""

    ALLOWED = "allowed"
    NO_CREDENTIALS = "no_credentials"
    UNKNOWN_USER = "unknown_user"
    BAD_CREDENTIALS = "bad_credentials"
    BAD_NKEY_SIGNATURE = "bad_nkey_signature"
    NKEY_NOT_SIGNED = "nkey_not_signed"
    CREDENTIAL_EXPIRED = "credential_expired"
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    CONNECTION_TYPE_NOT_ALLOWED = "connection_type_not_allowed"
    OUTSIDE_TIME_WINDOW = "outside_time_window"
    UNSAFE_TEMPLATE_VALUE = "unsafe_template_value"
    ACCOUNT_NOT_ALLOWED = "account_not_allowed"
    NO_MATCHING_RULE = "no_matching_rule"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    UNKNOWN_TOKEN = "unknown_token"  # noqa: S105 - reason codes, not secrets
    INVALID_TOKEN = "invalid_token"  # noqa: S105
    UNTRUSTED_ISSUER = "untrusted_issuer"
    CLAIM_NOT_ALLOWED = "claim_not_allowed"  # a token's claims fail its issuer's require rules
    MQTT_CLIENT_ID_NOT_ALLOWED = "mqtt_client_id_not_allowed"  # the id fits no mqtt_client_id
    INVALID_CERTIFICATE = "invalid_certificate"  # malformed, wrong usage, revoked, over bounds
    EXPLICIT_DENY = "explicit_deny"
    CONFLICTING_GRANTS = "conflicting_grants"  # merged groups' grants that are unsafe together
    INTERNAL_ERROR = "internal_error"
    OVERLOADED = "overloaded"  # refused at admission: no decision possible before the exp
    # server_versions: the nats-server asking lacks a fix the settings require
    SERVER_VERSION_NOT_ACCEPTED = "server_version_not_accepted"


class DropReason(StrEnum):
    """Why a request got no reply (the client waits out the server's timeout)."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    WRONG_ISSUER = "wrong_issuer"
    EXPIRED = "expired"
    ENCRYPTION_MISMATCH = "encryption_mismatch"
    OVERLOAD = "overload"
    THROTTLED = "throttled"
    BAD_XKEY = "bad_xkey"  # the Nats-Server-Xkey header is not a usable curve key
    INTERNAL_ERROR = "internal_error"  # a fault before the request could be read
    SHUTDOWN = "shutdown"  # still undecided when the drain timeout ran out (or a forced exit)


class Lane(StrEnum):
    """Where a request's work runs (`callout.service.admission`): ``cheap`` work takes
    microseconds on the event loop (nkey signatures, HMAC tokens, cache hits, JWTs with known
    keys); ``expensive`` work waits for a KDF, a directory or a key fetch; ``shared`` work
    waits for the result of the same verification already in flight (the decision cache)."""

    CHEAP = "cheap"
    EXPENSIVE = "expensive"
    SHARED = "shared"


@dataclass(frozen=True, slots=True)
class Permissions:
    """NATS pub/sub permissions as the user JWT carries them."""

    pub_allow: tuple[str, ...] = ()
    pub_deny: tuple[str, ...] = ()
    sub_allow: tuple[str, ...] = ()
    sub_deny: tuple[str, ...] = ()
    resp_max: int = 0
    resp_ttl_ns: int = 0
    has_resp: bool = False

    def to_nats(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        pub = _allow_deny(self.pub_allow, self.pub_deny)
        sub = _allow_deny(self.sub_allow, self.sub_deny)
        if pub:
            body["pub"] = pub
        if sub:
            body["sub"] = sub
        if self.has_resp:
            body["resp"] = {"max": self.resp_max, "ttl": self.resp_ttl_ns}
        return body


def _allow_deny(allow: tuple[str, ...], deny: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if allow:
        out["allow"] = list(allow)
    if deny:
        out["deny"] = list(deny)
    return out


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A daily window (``HH:MM:SS`` start and end) in which the user may connect."""

    start: str
    end: str


@dataclass(frozen=True, slots=True)
class UserGrant:
    """Everything the issued user JWT says about one login, before signing."""

    name: str
    account: str
    expires: int
    permissions: Permissions = Permissions()
    src: tuple[str, ...] = ()
    times: tuple[TimeRange, ...] = ()
    times_location: str = ""
    connection_types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    proxy_required: bool = False  # nats-server refuses the client unless via a trusted proxy


class BackendName(StrEnum):
    """The backends' names: each backend's ``name``, `Identity.backend`, and what the policy
    dispatches on (static users and API tokens are policy entries; directory and IdP logins
    are mapped through groups)."""

    STATIC = "static"
    TOKEN = "token"  # noqa: S105 - a backend name, not a secret
    LDAP = "ldap"
    OIDC = "oidc"
    CERT = "cert"


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified principal.

    ``principal`` is the user name, token *id* or token subject (never a secret);
    ``groups`` are directory/IdP group names the policy maps to roles; ``attributes`` are
    values usable in subject templates as ``{{user.attr.NAME}}``; ``expires_at`` caps the
    user JWT's expiry (for tokens).
    """

    principal: str
    backend: str
    groups: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one login. ``detail`` is for logs and must never hold a secret."""

    reason: Reason
    backend: str = ""
    principal: str = ""
    grant: UserGrant | None = None
    detail: str = ""

    @property
    def allowed(self) -> bool:
        return self.grant is not None

    @classmethod
    def allow(cls, grant: UserGrant, *, backend: str, principal: str) -> Decision:
        return cls(Reason.ALLOWED, backend, principal, grant)

    @classmethod
    def deny(
        cls, reason: Reason, *, backend: str = "", principal: str = "", detail: str = ""
    ) -> Decision:
        if reason is Reason.ALLOWED:
            raise ValueError("a deny needs a deny reason")
        return cls(reason, backend, principal, None, detail)
