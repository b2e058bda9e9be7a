"""Micro-benchmarks of live sessions: what a reload costs per live session, and recording a
grant in a full registry (pytest-benchmark; never timed assertions, each checks its result).

Re-run: `.venv/bin/pytest tests/benchmarks/test_sessions.py -q -p no:cacheprovider`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from callout.decision import Identity
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.issuer import ConfigModeIssuer
from callout.service.runtime import Runtime
from callout.sessions.registry import Session, SessionRegistry, credential_digest, stripped
from callout.sessions.revoker import revocations
from tests.unit.policy.helpers import NOW, request, snapshot

pytestmark = pytest.mark.benchmark(group="sessions", min_rounds=5, max_time=1.0, warmup=False)

LIVE = 10_000
POLICY = """
roles:
  app: {publish: {allow: ["app.>", "user.{{user.name}}.>"]}, subscribe: {allow: ["app.>"]}}
groups:
  devs: {roles: [app]}
  ops: {roles: [app]}
"""


def _sessions(runtime: Runtime, count: int) -> list[Session]:
    out = []
    for n in range(count):
        identity = Identity(f"user{n}", "ldap", groups=("devs",))
        login = request(user=identity.principal)
        decision = runtime.policy.authorize(identity, login, NOW)
        assert decision.grant is not None
        out.append(
            Session(
                server_id="NSERVER",
                client_id=n,
                user_nkey=f"U{n}",
                identity=identity,
                grant=decision.grant,
                request=stripped(login),
                policy_digest=runtime.policy.digest,
                credential=credential_digest(runtime.policy, identity),
                issued_at=NOW,
            )
        )
    return out


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Runtime, Runtime]:
    issuer = ConfigModeIssuer(KeyPair.generate(KeyRole.ACCOUNT), frozenset({"APP"}))
    old: Path = tmp_path_factory.mktemp("old")
    new: Path = tmp_path_factory.mktemp("new")
    narrowed = POLICY.replace("  devs: {roles: [app]}\n", "")
    return (
        Runtime(policy=snapshot(old, POLICY), issuer=issuer),
        Runtime(policy=snapshot(new, narrowed), issuer=issuer),
    )


def test_a_reload_re_decides_10000_live_sessions(
    benchmark: Any, runtimes: tuple[Runtime, Runtime]
) -> None:
    """The whole re-decision after a reload that revokes every session."""
    old, new = runtimes
    live = _sessions(old, LIVE)
    found = benchmark(revocations, live, new, NOW + 10)
    assert len(found) == LIVE
    assert {r.reason for r in found} == {"no_matching_rule"}


def test_recording_a_grant_in_a_full_registry(
    benchmark: Any, runtimes: tuple[Runtime, Runtime]
) -> None:
    """A login storm against a full registry: each add evicts the session expiring first."""
    old, _ = runtimes
    template = _sessions(old, 1)[0]
    registry = SessionRegistry(max_sessions=LIVE)
    for session in _sessions(old, LIVE):
        registry.add(session)
    counter = iter(range(LIVE, 10**9))

    def add() -> None:
        n = next(counter)
        registry.add(dataclasses.replace(template, client_id=n))

    benchmark(add)
    assert len(registry) == LIVE
