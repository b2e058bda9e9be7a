"""The chain: backends in configured order, first to recognise decides, every decision reported."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from callout.backends.cache import CachedBackend
from callout.backends.chain import (
    BackendReport,
    BackendStats,
    ReportedBackend,
    build_chain,
    close_backends,
)
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.decision import Decision, Identity, Reason
from callout.errors import BackendUnavailableError, ConfigError
from callout.policy import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import OpenedRequest, Pipeline
from callout.service.runtime import Runtime
from callout.settings import Settings, load_settings
from tests.unit.policy.helpers import NOW, request, snapshot


class Fixed:
    """A fake backend (port boundary) that always answers the same, and counts calls."""

    def __init__(self, name: str, answer: Identity | Decision | Exception | None) -> None:
        self.name = name
        self.answer = answer
        self.calls = 0

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    return snapshot(
        tmp_path,
        """
        roles: {app: {publish: {allow: ["app.>"]}}}
        groups:
          readers: {roles: [app]}
          blocked: {deny: true}
        """,
    )


async def decide(policy: PolicySnapshot, *backends: Any) -> Decision:
    runtime = Runtime(
        policy, ConfigModeIssuer(KeyPair.generate(KeyRole.ACCOUNT), frozenset({"APP"}))
    )
    pipeline = Pipeline(runtime=lambda: runtime, backends=backends)
    return await pipeline.decide(
        OpenedRequest(request(user="u", password="p"), None, runtime), now=NOW
    )


def secret_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def settings(**values: Any) -> Settings:
    return load_settings(None, keys={"issuer_seed_file": "/x"}, accounts=["APP"], **values)


async def test_the_first_backend_that_recognises_the_credential_decides(
    policy: PolicySnapshot,
) -> None:
    """Order is configuration: a later backend is not asked once one has answered."""
    passes = Fixed("token", None)
    first = Fixed("ldap", Identity("u", "ldap", groups=("readers",)))
    later = Fixed("oidc", Decision.deny(Reason.BAD_CREDENTIALS))
    decision = await decide(policy, passes, first, later)
    assert decision.allowed
    assert (passes.calls, first.calls, later.calls) == (1, 1, 0)


async def test_a_recognised_but_wrong_credential_never_falls_through(
    policy: PolicySnapshot,
) -> None:
    """A weaker backend later in the chain must not get a second chance at a refused login."""
    refuses = Fixed("static", Decision.deny(Reason.BAD_CREDENTIALS, backend="static"))
    would_allow = Fixed("ldap", Identity("u", "ldap", groups=("readers",)))
    decision = await decide(policy, refuses, would_allow)
    assert decision.reason is Reason.BAD_CREDENTIALS
    assert would_allow.calls == 0


async def test_explicit_deny_wins_over_every_allowing_group(policy: PolicySnapshot) -> None:
    """A member of a deny group is refused, whatever other groups would grant."""
    member = Fixed("ldap", Identity("u", "ldap", groups=("readers", "blocked")))
    assert (await decide(policy, member)).reason is Reason.EXPLICIT_DENY


async def test_an_outage_fails_closed_with_its_own_reason_and_is_reported(
    policy: PolicySnapshot,
) -> None:
    """Directory down is not a wrong password: a distinct reason, and no later backend asked."""
    stats = BackendStats()
    seen: list[BackendReport] = []
    stats.observers.append(seen.append)
    down = ReportedBackend(Fixed("ldap", BackendUnavailableError("ldap", "down")), stats)
    later = Fixed("static", Identity("u", "static"))
    decision = await decide(policy, down, later)
    assert decision.reason is Reason.BACKEND_UNAVAILABLE
    assert later.calls == 0
    assert [(r.backend, r.reason) for r in seen] == [("ldap", Reason.BACKEND_UNAVAILABLE)]


async def test_every_decision_is_reported_with_its_reason_and_latency(
    policy: PolicySnapshot,
) -> None:
    """Reasons are a closed enum per backend; passes are not decisions and are not reported."""
    stats = BackendStats()
    seen: list[BackendReport] = []
    stats.observers.append(seen.append)
    passes = ReportedBackend(Fixed("token", None), stats)
    allows = ReportedBackend(Fixed("ldap", Identity("u", "ldap", groups=("readers",))), stats)
    await decide(policy, passes, allows)
    refuses = ReportedBackend(Fixed("ldap", Decision.deny(Reason.BAD_CREDENTIALS)), stats)
    await decide(policy, refuses)
    assert [(r.backend, r.reason) for r in seen] == [
        ("ldap", Reason.ALLOWED),
        ("ldap", Reason.BAD_CREDENTIALS),
    ]
    assert all(r.duration_s >= 0 for r in seen)


def test_the_default_chain_is_the_static_backend_alone() -> None:
    """Existing configurations without `backends` keep working unchanged."""
    verifier = PasswordVerifier(max_workers=1)
    try:
        (only,) = build_chain(settings(), verifier)
    finally:
        verifier.close()
    assert isinstance(only, ReportedBackend)
    assert isinstance(only.inner, CachedBackend)
    assert isinstance(only.inner.inner, StaticBackend)


async def test_the_chain_follows_the_configured_order(
    tmp_path: Path, policy: PolicySnapshot
) -> None:
    """static before ldap: static passes names it does not know on to the directory."""
    bind = secret_file(tmp_path / "bind", "service-pw")
    pepper = secret_file(tmp_path / "pepper", "p" * 32)
    configured = settings(
        backends=[
            {"type": "token", "pepper_file": str(pepper)},
            {"type": "static"},
            {
                "type": "ldap",
                "urls": ["ldaps://ldap.example.org"],
                "bind_dn": "cn=svc",
                "bind_password_file": str(bind),
                "user_base": "ou=people",
                "groups": {"base": "ou=groups"},
            },
        ]
    )
    verifier = PasswordVerifier(max_workers=1)
    chain = build_chain(configured, verifier)
    alone = build_chain(settings(), verifier)
    try:
        assert [backend.name for backend in chain] == ["token", "static", "ldap"]
        stranger = request(user="stranger", password="pw")
        assert await chain[1].authenticate(stranger, policy) is None
        refused = await alone[0].authenticate(stranger, policy)
        assert isinstance(refused, Decision)
        assert refused.reason is Reason.UNKNOWN_USER
    finally:
        verifier.close()
        close_backends([*chain, *alone])


def test_a_missing_optional_dependency_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator who configures LDAP without python-ldap gets the pip command, not a trace."""
    monkeypatch.setitem(sys.modules, "ldap", None)  # what an absent package looks like
    monkeypatch.delitem(sys.modules, "callout.backends.directory", raising=False)
    configured = settings(
        backends=[
            {
                "type": "ldap",
                "urls": ["ldaps://ldap.example.org"],
                "bind_dn": "cn=svc",
                "bind_password_file": str(secret_file(tmp_path / "bind", "pw")),
                "user_base": "ou=people",
                "groups": {"base": "ou=groups"},
            }
        ]
    )
    verifier = PasswordVerifier(max_workers=1)
    try:
        with pytest.raises(ConfigError, match=r"pip install 'nats-auth-callout\[ldap\]'"):
            build_chain(configured, verifier)
    finally:
        verifier.close()
