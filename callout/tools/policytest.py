"""Policy unit tests run: each case of the test files (`callout.tools.policysuite`) simulated
against the policy and the real backends, with a failure listed for each expectation that did
not hold. Running is pure: no NATS, no network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from callout.backends.base import Backend
from callout.decision import Identity, Permissions
from callout.policy.snapshot import PolicySnapshot
from callout.policy.subjects import subject_verdict
from callout.tools.certlogin import with_certificate
from callout.tools.diff import duration_text
from callout.tools.explain import GivenIdentity, Login, build_request, simulate_login
from callout.tools.explain import parse_time as _parse_time
from callout.tools.policysuite import Expectation, Located, LoginSpec


@dataclass(slots=True)
class Outcome:
    """One case's result: ``failures`` lists each expectation that did not hold."""

    test: Located
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def _login(spec: LoginSpec) -> Login:
    return Login(
        user=spec.user,
        password=spec.password,
        token=spec.token,
        nkey_seed=spec.nkey_seed,
        host=spec.host,
        connection_type=spec.connection_type,
        client_name=spec.client_name,
        mqtt_client_id=spec.mqtt_client_id,
        server_name=spec.server_name,
        server_cluster=spec.server_cluster,
        server_tags=tuple(spec.server_tags),
    )


async def run_case(
    test: Located,
    snapshot: PolicySnapshot,
    backends: Sequence[Backend],
    *,
    now: float,
    accounts: frozenset[str] | None = None,
    system_account: str | None = None,
) -> Outcome:
    """Decide the case's login and compare with what it expects."""
    case = test.case
    spec = case.login or LoginSpec()
    at = _parse_time(spec.at) if spec.at else now
    request = build_request(_login(spec), int(at))
    if test.chain:
        request = with_certificate(request, test.chain)
    chain = backends
    if case.identity is not None:
        given = case.identity
        identity = Identity(
            principal=given.principal,
            backend=given.backend,
            groups=tuple(given.groups),
            attributes=MappingProxyType(dict(given.attributes)),
        )
        chain = [GivenIdentity(identity)]
    decision, _ = await simulate_login(
        snapshot, request, chain, now=at, accounts=accounts, system_account=system_account
    )
    outcome = Outcome(test)
    expect = case.expect
    got = "allow" if decision.allowed else "deny"
    if got != expect.decision:
        why = f" ({decision.reason.value}{': ' + decision.detail if decision.detail else ''})"
        outcome.failures.append(f"decision: expected {expect.decision}, got {got}{why}")
        return outcome
    if expect.reason is not None and decision.reason.value != expect.reason:
        outcome.failures.append(f"reason: expected {expect.reason}, got {decision.reason.value}")
    grant = decision.grant
    if grant is None:
        return outcome
    if expect.account is not None and grant.account != expect.account:
        outcome.failures.append(f"account: expected {expect.account!r}, got {grant.account!r}")
    if expect.expiry is not None:
        lifetime, seconds = grant.expires - int(at), int(expect.expiry.total_seconds())
        if lifetime != seconds:
            expected, actual = duration_text(seconds), duration_text(lifetime)
            outcome.failures.append(f"expiry: expected {expected}, got {actual}")
    outcome.failures += _subject_failures(expect, grant.permissions)
    return outcome


def _subject_failures(expect: Expectation, permissions: Permissions) -> list[str]:
    failures: list[str] = []
    sides = (
        ("publish", expect.publish, permissions.pub_allow, permissions.pub_deny),
        ("subscribe", expect.subscribe, permissions.sub_allow, permissions.sub_deny),
    )
    for side, wanted, allow, deny in sides:
        if wanted is None:
            continue
        checks = [(s, True) for s in wanted.allow] + [(s, False) for s in wanted.deny]
        for subject, should in checks:
            verdict = subject_verdict(allow, deny, subject)
            if verdict.allowed == should:
                continue
            expected = "allowed" if should else "denied"
            if verdict.allowed:
                because = f"allowed by {verdict.entry!r}"
            elif verdict.entry:
                because = f"denied by {verdict.entry!r}"
            else:
                because = "no allow entry matches"
            failures.append(f"{side} {subject!r}: expected {expected}, {because}")
    return failures


def run(
    tests: Sequence[Located],
    snapshot: PolicySnapshot,
    backends: Sequence[Backend],
    *,
    now: float,
    accounts: frozenset[str] | None = None,
    system_account: str | None = None,
) -> list[Outcome]:
    """Run every case (in order) on one event loop."""

    async def all_cases() -> list[Outcome]:
        return [
            await run_case(
                test, snapshot, backends, now=now, accounts=accounts, system_account=system_account
            )
            for test in tests
        ]

    return asyncio.run(all_cases())
