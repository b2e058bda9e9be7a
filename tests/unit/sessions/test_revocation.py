"""Registry bounds and re-deciding live sessions under a new policy, with plain values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from callout.credentials.passwords import hash_password
from callout.decision import Identity
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.issuer import ConfigModeIssuer
from callout.service.runtime import Runtime
from callout.sessions.registry import Session, SessionRegistry, credential_digest, stripped
from callout.sessions.revoker import (
    CREDENTIAL_CHANGED,
    LIFETIME_SHORTENED,
    PERMISSIONS_CHANGED,
    plan,
    reassess,
    revocations,
)
from tests.unit.policy.helpers import ALICE_HASH, NOW, request, snapshot

POLICY = f"""
roles:
  app: {{publish: {{allow: ["app.>"]}}, subscribe: {{allow: ["app.>"]}}}}
users:
  alice: {{password: "{ALICE_HASH}", roles: [app]}}
groups:
  devs: {{roles: [app]}}
"""
ISSUER = ConfigModeIssuer(KeyPair.generate(KeyRole.ACCOUNT), frozenset({"APP", "OPS"}))


def runtime(directory: Path, text: str) -> Runtime:
    return Runtime(policy=snapshot(directory, text), issuer=ISSUER)


def session(old: Runtime, identity: Identity, *, client_id: int = 7, expires: int = 0) -> Session:
    req = request(user=identity.principal, password="secret")
    decision = old.policy.authorize(identity, req, NOW)
    assert decision.grant is not None
    grant = decision.grant
    return Session(
        server_id="NSERVER",
        client_id=client_id,
        user_nkey="U" + str(client_id),
        identity=identity,
        grant=dataclasses.replace(grant, expires=expires) if expires else grant,
        request=stripped(req),
        policy_digest=old.policy.digest,
        credential=credential_digest(old.policy, identity),
        issued_at=NOW,
    )


ALICE = Identity("alice", "static")
DEV = Identity("carol", "ldap", groups=("devs",))


def test_an_unchanged_policy_keeps_every_session(tmp_path: Path) -> None:
    """A reload that changes nothing for an identity must not disconnect it."""
    old = runtime(tmp_path, POLICY)
    assert reassess(session(old, ALICE), old, NOW + 10) is None
    assert reassess(session(old, DEV), old, NOW + 10) is None


@pytest.mark.parametrize(
    ("edit", "who", "reason"),
    [
        (("  alice: ", "  alicia: "), ALICE, "unknown_user"),
        (('["app.>"]}, subscribe', '["app.x"]}, subscribe'), ALICE, PERMISSIONS_CHANGED),
        (("  devs: {roles: [app]}", "  ops: {roles: [app]}"), DEV, "no_matching_rule"),
        (("roles: [app]}\n", 'roles: [app], src: ["10.0.0.0/8"]}\n'), ALICE, "source_not_allowed"),
        (("roles: [app]}\n", "roles: [app], account: NOPE}\n"), ALICE, "account_not_allowed"),
        (("roles: [app]}\n", "roles: [app], expiry: 5m}\n"), ALICE, LIFETIME_SHORTENED),
    ],
)
def test_a_session_the_new_policy_decides_differently_is_revoked(
    tmp_path: Path, edit: tuple[str, str], who: Identity, reason: str
) -> None:
    """Removed identities, narrowed permissions, unmet conditions and shorter lifetimes all
    end the session, each with its own reason."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    live = session(runtime(tmp_path / "old", POLICY), who)
    assert edit[0] in POLICY
    new = runtime(tmp_path / "new", POLICY.replace(edit[0], edit[1], 1))
    assert reassess(live, new, NOW + 10) == reason


def test_a_changed_password_revokes_the_sessions_logged_in_with_the_old_one(
    tmp_path: Path,
) -> None:
    """Rotating a credential must end what the old one opened: the digest of the entry is
    compared, not the secret (the registry keeps none)."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = runtime(tmp_path / "old", POLICY)
    live = session(old, ALICE)
    assert live.request.connect.password == ""
    rotated = POLICY.replace(ALICE_HASH, hash_password("another-secret"))
    assert reassess(live, runtime(tmp_path / "new", rotated), NOW + 10) == CREDENTIAL_CHANGED


def test_the_cap_holds_back_the_whole_push(tmp_path: Path) -> None:
    """Past the cap nothing is kicked: a partial disconnect of a bad push is worse."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = runtime(tmp_path / "old", POLICY)
    live = [session(old, ALICE, client_id=n) for n in range(3)]
    new = runtime(tmp_path / "new", POLICY.replace("  alice: ", "  alicia: "))
    found = revocations(live, new, NOW)
    assert len(found) == 3
    assert plan(found, cap=3).kick == tuple(found)
    held = plan(found, cap=2)
    assert held.kick == ()
    assert held.held_back == tuple(found)


def test_a_full_registry_forgets_the_session_that_expires_first(tmp_path: Path) -> None:
    """Memory is bounded: the session nearest its end is the cheapest to lose."""
    old = runtime(tmp_path, POLICY)
    registry = SessionRegistry(max_sessions=2)
    early = session(old, ALICE, client_id=1, expires=NOW + 60)
    late = session(old, ALICE, client_id=2, expires=NOW + 3600)
    assert registry.add(late) is None
    assert registry.add(early) is None
    newest = session(old, ALICE, client_id=3, expires=NOW + 1800)
    assert registry.add(newest) == early
    assert registry.evicted == 1
    assert {s.client_id for s in registry} == {2, 3}


def test_the_registry_follows_events_and_expiry(tmp_path: Path) -> None:
    """Confirmed by connect, removed by disconnect, by a server's shutdown or at expiry."""
    old = runtime(tmp_path, POLICY)
    registry = SessionRegistry(max_sessions=10)
    one, two = session(old, ALICE, client_id=1), session(old, DEV, client_id=2)
    registry.add(one)
    registry.add(two)
    assert registry.connected(one.key) is not None
    assert [s.connected for s in registry.select(principal="alice")] == [True]
    assert registry.select(group="devs") == [two]
    assert registry.sweep(two.grant.expires) == 2
    registry.add(one)
    assert registry.server_gone("NSERVER") == 1
    assert len(registry) == 0
    with pytest.raises(ValueError, match="at least 1"):
        SessionRegistry(0)


def test_losing_allow_system_account_revokes_a_system_account_session(tmp_path: Path) -> None:
    """The pipeline's system-account guard applies on reload too, not only at login."""
    admins = """
roles:
  sys: {publish: {allow: [">"]}, account: SYS, allow_system_account: true}
groups:
  admins: {roles: [sys]}
"""
    issuer = ConfigModeIssuer(KeyPair.generate(KeyRole.ACCOUNT), frozenset({"APP", "SYS"}))
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = Runtime(snapshot(tmp_path / "old", admins), issuer, system_account="SYS")
    live = session(old, Identity("root", "ldap", groups=("admins",)))
    assert reassess(live, old, NOW + 10) is None
    narrowed = admins.replace(", allow_system_account: true", "")
    new = Runtime(snapshot(tmp_path / "new", narrowed), issuer, system_account="SYS")
    assert reassess(live, new, NOW + 10) == "account_not_allowed"
