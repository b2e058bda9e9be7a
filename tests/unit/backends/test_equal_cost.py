"""Refused password logins cost the same in every chain order: counted at the port boundaries.

Each case counts the KDF verifications (a real verifier that records its calls) and the
directory probes (a fake directory, the port boundary of the LDAP backend) a refused login
spent. A wrong password for a static user, for a directory user, an unknown user, and empty
passwords must all show the same counts in one chain: then a response time cannot tell them
apart. Times are never compared here (that is `python -m tests.benchmarks.denial_timing`'s job).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest

from callout.backends.base import Backend
from callout.backends.chain import BackendStats, report_chain
from callout.backends.ldap import DirectoryUser, LdapBackend
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.backends.tokens import TokenBackend
from callout.decision import Decision, Identity, Reason
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import OpenedRequest, Pipeline
from callout.service.runtime import Runtime
from tests.unit.backends.counting import CountingVerifier
from tests.unit.policy.helpers import ALICE_HASH, NOW, request, snapshot


class CountingDirectory:
    """A directory with one user, dave; counts every search-and-bind it is asked for."""

    def __init__(self) -> None:
        self.calls = 0

    async def verify(self, login: str, password: str) -> DirectoryUser | Reason:
        self.calls += 1
        if login != "dave":
            return Reason.UNKNOWN_USER
        if password != "dave-pw":
            return Reason.BAD_CREDENTIALS
        return DirectoryUser(dn="uid=dave,ou=people", login="dave")

    def close(self) -> None:
        pass


class Passes:
    """A backend in front that never takes a password login (an OIDC backend's view)."""

    name = "oidc"

    async def authenticate(self, request: AuthRequest, policy: PolicySnapshot) -> None:
        return None


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> PolicySnapshot:
    return snapshot(
        tmp_path_factory.mktemp("equal"),
        f"""
        roles: {{app: {{publish: {{allow: [app.>]}}}}}}
        users:
          alice: {{password: "{ALICE_HASH}", roles: [app]}}
        """,
    )


@pytest.fixture
def verifier() -> Iterator[CountingVerifier]:
    counting = CountingVerifier()
    yield counting
    counting.close()


def chain(order: str, verifier: PasswordVerifier, directory: CountingDirectory) -> list[Backend]:
    """The backends of ``order`` (e.g. ``"token ldap static"``) as build_chain wires them."""
    names = order.split()
    passwords = [n for n in names if n in ("static", "ldap")]
    built: list[Backend] = []
    for name in names:
        final = name == passwords[-1] if name in passwords else True
        if name == "static":
            built.append(StaticBackend(verifier, final=final))
        elif name == "ldap":
            built.append(LdapBackend(directory, final=final))
        elif name == "token":
            built.append(TokenBackend(b"p" * 32, verifier))
        else:
            built.append(Passes())
    return report_chain(built, BackendStats(), verifier)


async def decide(backends: list[Backend], policy: PolicySnapshot, **login: Any) -> Decision:
    issuer = ConfigModeIssuer(KeyPair.generate(KeyRole.ACCOUNT), frozenset({"APP"}))
    runtime = Runtime(policy, issuer)
    pipeline = Pipeline(runtime=lambda: runtime, backends=backends)
    return await pipeline.decide(OpenedRequest(request(**login), None, runtime), now=NOW)


ORDERS = ["static", "ldap", "ldap static", "static ldap", "token ldap static", "oidc static ldap"]
REFUSALS = {
    "static-user-wrong": {"user": "alice", "password": "wrong"},
    "directory-user-wrong": {"user": "dave", "password": "wrong"},
    "unknown-user": {"user": "nobody", "password": "wrong"},
    "known-empty": {"user": "alice", "password": ""},
    "unknown-empty": {"user": "nobody", "password": ""},
    "unprintable-name": {"user": "no\x00body", "password": "wrong"},
}


@pytest.mark.parametrize("order", ORDERS)
async def test_every_refused_password_login_costs_one_kdf_and_one_probe_per_directory(
    order: str, policy: PolicySnapshot, verifier: CountingVerifier
) -> None:
    """Whatever the order, each refusal spends exactly what the chain's equal cost says."""
    kdf = 1 if "static" in order else 0
    probes = 1 if "ldap" in order else 0
    costs = {}
    for case, login in REFUSALS.items():
        directory = CountingDirectory()
        verifier.calls = 0
        decision = await decide(chain(order, verifier, directory), policy, **login)
        assert not decision.allowed, case
        costs[case] = (verifier.calls, directory.calls)
    assert costs == dict.fromkeys(REFUSALS, (kdf, probes))


async def test_an_allowed_login_is_not_padded(
    policy: PolicySnapshot, verifier: CountingVerifier
) -> None:
    """Whoever knows the password learns nothing from the time: no dummy work on success."""
    directory = CountingDirectory()
    decision = await decide(
        chain("ldap static", verifier, directory), policy, user="dave", password="dave-pw"
    )
    assert isinstance(decision, Decision)
    assert (verifier.calls, directory.calls) == (0, 1)


class Hangs:
    """A backend that never answers: a directory that accepted the connection and froze."""

    name = "ldap"

    async def authenticate(self, request: AuthRequest, policy: PolicySnapshot) -> Identity:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_backend_call_ends_before_the_request_expires_with_a_signed_deny(
    policy: PolicySnapshot, verifier: CountingVerifier
) -> None:
    """The budget is the request's own: exp minus the margin to sign, whatever the backend's
    own deadline setting says; the refusal is a fault reason, answered, not a silence."""
    stats = BackendStats()
    reports: list[str] = []
    stats.observers.append(lambda report: reports.append(report.error))
    issuer = ConfigModeIssuer(KeyPair.generate(KeyRole.ACCOUNT), frozenset({"APP"}))
    runtime = Runtime(policy, issuer)
    backends = report_chain([Hangs()], stats, verifier)
    pipeline = Pipeline(runtime=lambda: runtime, backends=backends)
    soon = dataclasses.replace(request(user="dave", password="x"), expires=int(time.time()) + 1)
    decision = await pipeline.decide(OpenedRequest(soon, None, runtime), now=time.time())
    assert decision.reason is Reason.BACKEND_UNAVAILABLE
    assert reports == ["timeout"]
