"""Deny paths cost the same whether the user exists or not: counted in KDF calls."""

from __future__ import annotations

import argon2
import pytest

from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.credentials.passwords import hash_password
from callout.policy.snapshot import PolicySnapshot
from tests.unit.policy.helpers import ALICE_HASH, request, snapshot


class CountingVerifier(PasswordVerifier):
    """A real verifier that records the parameters of every KDF it runs."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.calls: list[tuple[int, int, int]] = []

    async def verify(self, stored_hash: str, password: str) -> bool:
        params = argon2.extract_parameters(stored_hash)
        self.calls.append((params.memory_cost, params.time_cost, params.parallelism))
        return await super().verify(stored_hash, password)


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> PolicySnapshot:
    return snapshot(
        tmp_path_factory.mktemp("timing"),
        f"""
        roles: {{app: {{publish: {{allow: [app.>]}}}}}}
        users:
          alice: {{password: "{ALICE_HASH}", roles: [app]}}
        """,
    )


@pytest.mark.parametrize(
    ("user", "password"),
    [("alice", "wrong"), ("alice", ""), ("nobody", "wrong"), ("nobody", ""), ("alice", "x" * 500)],
    ids=["known-wrong", "known-empty", "unknown", "unknown-empty", "known-long"],
)
async def test_every_password_deny_runs_exactly_one_owasp_argon2_verify(
    policy: PolicySnapshot, user: str, password: str
) -> None:
    """Deterministic where wall-clock comparisons flake: same KDF count, same parameters, so
    a response time cannot tell a wrong password from an unknown user."""
    verifier = CountingVerifier()
    try:
        decision = await StaticBackend(verifier).authenticate(
            request(user=user, password=password), policy
        )
    finally:
        verifier.close()
    assert decision is not None
    assert verifier.calls == [(19456, 2, 1)]


def test_the_dummy_hash_has_the_parameters_of_a_real_one() -> None:
    """The dummy must cost what `hash-password` output costs, or timing still leaks."""
    real = argon2.extract_parameters(hash_password("x"))
    verifier = PasswordVerifier(max_workers=1)
    try:
        dummy = argon2.extract_parameters(verifier._dummy_hash)
    finally:
        verifier.close()
    assert (dummy.memory_cost, dummy.time_cost, dummy.parallelism) == (
        real.memory_cost,
        real.time_cost,
        real.parallelism,
    )
