"""Decisions are values: an allow with its grant, or a deny with a closed reason code.

`Reason` feeds logs, audit and metrics; the text sent to nats-server stays generic.
`DropReason` names why a request got no reply at all; `Lane` says how costly deciding is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from callout.protocol.claims import UserGrant


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
    EXPLICIT_DENY = "explicit_deny"
    INTERNAL_ERROR = "internal_error"
    OVERLOADED = "overloaded"  # refused at admission: no decision possible before the exp


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
