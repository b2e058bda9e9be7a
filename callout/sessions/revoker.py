"""Which live sessions a new policy would decide differently, and how many may be ended.

`reassess` re-runs the decision engine (`PolicySnapshot.authorize`, the same call the pipeline
makes) for a session's identity and connection under the new `Runtime`, without the client's
secrets: the credential is checked by comparing the digest of its policy entry instead. It
returns why the session must end, or None to keep it. `plan` applies the cap: a reload that
would end more than ``cap`` sessions ends none of them (a bad push must not disconnect
everyone); the operator sees a `revocation_held_back` log line and metric.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from callout.decision import UserGrant
from callout.observability.decided import RuntimeView
from callout.sessions.registry import Session, credential_digest


@dataclass(frozen=True, slots=True)
class Revocation:
    session: Session
    reason: str  # a `Reason` value, or one of the words below


CREDENTIAL_CHANGED = "credential_changed"
PERMISSIONS_CHANGED = "permissions_changed"
LIFETIME_SHORTENED = "lifetime_shortened"
DENY_LISTED = "revoked"


def _comparable(grant: UserGrant) -> UserGrant:
    return dataclasses.replace(grant, expires=0)


def reassess(session: Session, runtime: RuntimeView, now: float) -> str | None:
    """Why ``session`` would not get its grant under ``runtime`` now, or None if it would."""
    policy = runtime.policy
    decision = policy.authorize(session.identity, session.request, now)
    if decision.grant is None:
        return decision.reason.value
    grant = decision.grant
    if not runtime.issuer.can_place(grant.account):
        return "account_not_allowed"
    system = runtime.system_account is not None and grant.account == runtime.system_account
    if system and not policy.allows_system_account(session.identity):
        return "account_not_allowed"  # the pipeline's system-account guard
    if session.credential and credential_digest(policy, session.identity) != session.credential:
        return CREDENTIAL_CHANGED
    if _comparable(grant) != _comparable(session.grant):
        return PERMISSIONS_CHANGED
    # The new lifetime, counted from the original login, ends before the JWT we issued.
    if session.issued_at + (grant.expires - now) < session.grant.expires - 1:
        return LIFETIME_SHORTENED
    return None


def revocations(sessions: list[Session], runtime: RuntimeView, now: float) -> list[Revocation]:
    """Every session the new runtime would decide differently, oldest first."""
    found = []
    for session in sessions:
        reason = reassess(session, runtime, now)
        if reason is not None:
            found.append(Revocation(session, reason))
    return found


@dataclass(frozen=True, slots=True)
class Plan:
    """What one reload does: ``kick`` now, ``held_back`` because the cap was exceeded."""

    kick: tuple[Revocation, ...]
    held_back: tuple[Revocation, ...]


def plan(found: list[Revocation], *, cap: int) -> Plan:
    """All of ``found`` when it fits under ``cap``, none of it when it does not."""
    if len(found) > cap:
        return Plan((), tuple(found))
    return Plan(tuple(found), ())
