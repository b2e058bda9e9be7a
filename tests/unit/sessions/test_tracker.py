"""The tracker's own bounds and the correlation of a refused grant, with plain values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from callout.backends.base import lane_of
from callout.decision import Identity, Lane, UserGrant
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.sessions.advisories import ClientEvent
from callout.sessions.denylist import DenyEntry, DenyList
from callout.sessions.registry import Session, SessionRegistry
from callout.sessions.tracker import DenyListGate, SessionTracker
from tests.unit.policy.helpers import NOW, request, snapshot


def tracker(max_sessions: int = 10) -> SessionTracker:
    return SessionTracker(SessionRegistry(max_sessions), DenyList(None), clock=lambda: NOW)


def session(client_id: int, expires: int = NOW + 3600) -> Session:
    return Session(
        server_id="NSERVER",
        client_id=client_id,
        user_nkey=f"U{client_id}",
        identity=Identity("alice", "static"),
        grant=UserGrant(name="alice", account="APP", expires=expires),
        request=request(user="alice"),
        policy_digest="d",
        credential="",
        issued_at=NOW,
    )


def test_identities_waiting_for_their_grant_are_bounded() -> None:
    """Requests that never reach the observer (dropped) must not pile up."""
    sessions = tracker()
    sessions.max_identities = 3
    for n in range(10):
        login = dataclasses.replace(request(user=f"u{n}"), user_nkey=f"U{n}")
        sessions.identified(login, Identity(f"u{n}", "static"))
    assert len(sessions._identities) == 3


def test_a_refused_grant_is_found_after_its_disconnect_event() -> None:
    """The disconnect (system connection) may come before the advisory (service
    connection): the rejection is still attributed, and reported once."""
    sessions = tracker()
    sessions.registry.add(session(10))
    sessions.disconnected(ClientEvent("NSERVER", 10, "APP"))
    audit = sessions.rejected(ClientEvent("NSERVER", 10, "AUTH", 'Account "AXYZ" not allowed'))
    assert audit is not None
    assert audit["reason"] == "server_rejected_grant"
    assert audit["principal"] == "alice"
    assert sessions.rejected(ClientEvent("NSERVER", 10, "AUTH", "again")) is None


def test_a_rejection_of_a_login_we_denied_is_not_ours() -> None:
    """Only grants count: a denial we sent also produces an advisory."""
    assert tracker().rejected(ClientEvent("NSERVER", 99, "AUTH", "Authentication Failure")) is None


def test_a_deny_listed_identity_is_refused_with_explicit_deny() -> None:
    sessions = tracker()
    sessions.deny_list.add(DenyEntry("user", "alice", NOW + 60), NOW)
    refused = sessions.refused(Identity("alice", "static"))
    assert refused is not None
    assert refused.reason.value == "explicit_deny"
    assert sessions.refused(Identity("bob", "static")) is None


def test_eviction_stays_cheap_and_right_under_many_logins() -> None:
    """A login storm against a full registry evicts in expiry order, never grows it."""
    registry = SessionRegistry(max_sessions=100)
    for n in range(5000):
        registry.add(session(n, expires=NOW + 10_000 - n % 1000))
    assert len(registry) == 100
    assert registry.evicted == 4900
    assert min(s.grant.expires for s in registry) >= NOW + 10_000 - 999
    assert len(registry._by_expiry) <= 2 * 100 + 16


class _ExpensiveBackend:
    """A backend at the port boundary that declares the expensive lane (a KDF)."""

    name = "static"

    async def authenticate(self, request: AuthRequest, policy: PolicySnapshot) -> None:
        return None

    def lane(self, request: AuthRequest, policy: PolicySnapshot) -> Lane | None:
        return Lane.EXPENSIVE


def test_the_deny_list_gate_keeps_its_backends_lane(tmp_path: Path) -> None:
    """With live sessions on, a password login must still run in the expensive lane: a gate
    that hid the lane would let wrong passwords take the cheap slots again."""
    gate = DenyListGate(_ExpensiveBackend(), tracker())
    policy = snapshot(tmp_path, "roles: {}")
    assert lane_of([gate], request(user="alice"), policy) is Lane.EXPENSIVE
