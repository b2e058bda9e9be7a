"""The audit trail: one event per request outcome, in a documented, versioned schema.

Schema version 1 (README "Audit events"); every event has these keys, empty when unknown:

    audit_version  1
    decision       allow | deny | error | dropped
    reason         a `Reason` or `DropReason` value
    backend        the backend that recognised the credential ("" if none)
    principal      user name, nkey, token id or token subject: never a secret
    account        target account (allow only)
    permissions_digest  sha256 (16 hex) of the granted permissions, to spot changes
    expires        unix time the issued user JWT expires (allow only), else 0
    request_id     the user nkey nats-server minted for this connection: unique per login
                   attempt (the request's jti is not: requests in one second share it)
    server_id, server_name, client_host, client_id, client_name, client_lang,
    client_version, client_kind, client_type
    policy_digest  sha256 of the policy tree the request was decided with
    duration_s     seconds from receipt to answer
    replied        whether an answer was published
    detail         operator text for the reason (never a secret)

Events go to the log as ``event="auth_decision"`` with ``logger="callout.audit"`` and,
optionally, to a JetStream stream (`callout.observability.auditstream`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson
import structlog

from callout.decision import Decision, Permissions, Reason, TimeRange, UserGrant
from callout.observability import logs
from callout.protocol.claims import AuthRequest

AUDIT_VERSION = 1
AUDIT_EVENT = "auth_decision"
AUDIT_LOGGER = "callout.audit"

_ERRORS = frozenset({Reason.INTERNAL_ERROR, Reason.BACKEND_UNAVAILABLE})

AuditEvent = dict[str, Any]


def outcome(decision: Decision) -> str:
    """``allow``, ``deny``, or ``error`` (a fault of ours or a backend's, not the client's)."""
    if decision.allowed:
        return "allow"
    return "error" if decision.reason in _ERRORS else "deny"


def permissions_digest(grant: UserGrant | None) -> str:
    """A short, stable digest of what a grant allows (empty for no grant)."""
    if grant is None:
        return ""
    allows = (
        grant.account,
        grant.permissions,
        grant.src,
        grant.connection_types,
        grant.times,
        grant.times_location,
    )
    return _digest(allows)


_Allows = tuple[str, Permissions, tuple[str, ...], tuple[str, ...], tuple[TimeRange, ...], str]


@lru_cache(maxsize=256)  # logins of one role share what they are allowed; a bounded table
def _digest(allows: _Allows) -> str:
    account, permissions, src, connection_types, times, times_location = allows
    body = {
        "account": account,
        "permissions": permissions.to_nats(),
        "src": list(src),
        "connection_types": list(connection_types),
        "times": [(w.start, w.end) for w in times],
        "times_location": times_location,
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _request_fields(request: AuthRequest | None) -> AuditEvent:
    if request is None:
        return dict.fromkeys(
            (
                "request_id",
                "server_id",
                "server_name",
                "client_host",
                "client_name",
                "client_lang",
                "client_version",
                "client_kind",
                "client_type",
            ),
            "",
        ) | {"client_id": 0}
    client, connect = request.client, request.connect
    return {
        "request_id": request.user_nkey,
        "server_id": request.server.id,
        "server_name": request.server.name,
        "client_host": client.host,
        "client_id": client.id,
        "client_name": client.name or connect.name,
        "client_lang": connect.lang,
        "client_version": connect.version,
        "client_kind": client.kind,
        "client_type": client.type,
    }


def decision_event(
    request: AuthRequest,
    decision: Decision,
    *,
    policy_digest: str,
    seconds: float,
    replied: bool,
) -> AuditEvent:
    """The audit event for a decided request."""
    grant = decision.grant
    return {
        "audit_version": AUDIT_VERSION,
        "decision": outcome(decision),
        "reason": decision.reason.value,
        "backend": decision.backend,
        "principal": decision.principal,
        "account": grant.account if grant else "",
        "permissions_digest": permissions_digest(grant),
        "expires": grant.expires if grant else 0,
        **_request_fields(request),
        "policy_digest": policy_digest,
        "duration_s": round(seconds, 6),
        "replied": replied,
        "detail": decision.detail,
    }


def drop_event(
    reason: str,
    detail: str,
    *,
    request: AuthRequest | None,
    principal: str = "",
    policy_digest: str = "",
    seconds: float,
) -> AuditEvent:
    """The audit event for a request that got no reply."""
    return {
        "audit_version": AUDIT_VERSION,
        "decision": "dropped",
        "reason": reason,
        "backend": "",
        "principal": principal,
        "account": "",
        "permissions_digest": "",
        "expires": 0,
        **_request_fields(request),
        "policy_digest": policy_digest,
        "duration_s": round(seconds, 6),
        "replied": False,
        "detail": detail,
    }


class AuditLog:
    """Emits audit events to the log and to an optional extra sink (JetStream)."""

    def __init__(
        self, *, log: bool = True, sink: Callable[[AuditEvent], None] | None = None
    ) -> None:
        self._log = structlog.get_logger(AUDIT_LOGGER) if log else None
        self.sink = sink

    def emit(self, event: AuditEvent) -> None:
        """One event to each output; all of them carry the bound context variables."""
        if self._log is not None:
            warn = event["decision"] in ("error", "dropped")
            direct = logs.direct_json()
            if direct is not None:  # the same line, without the processor chain (hot path)
                direct.write(
                    logging.WARNING if warn else logging.INFO, AUDIT_LOGGER, AUDIT_EVENT, event
                )
            elif warn:
                self._log.warning(AUDIT_EVENT, logger=AUDIT_LOGGER, **event)
            else:
                self._log.info(AUDIT_EVENT, logger=AUDIT_LOGGER, **event)
        if self.sink is not None:
            bound = structlog.contextvars.get_contextvars()
            self.sink({**bound, **event} if bound else event)
