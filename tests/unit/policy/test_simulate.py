"""`simulate_login`: the service's decision with account placement only, nothing signed."""

from __future__ import annotations

from pathlib import Path

from callout.decision import BackendName, Identity, Reason
from callout.service.placement import ANY_ACCOUNT, Placement
from callout.tools.explain import GivenIdentity, simulate_login
from tests.unit.policy.helpers import ALICE_HASH, NOW, request, snapshot

_USERS = f"""\
users:
  alice: {{password: "{ALICE_HASH}"}}
  root: {{password: "{ALICE_HASH}", account: SYS}}
"""


def _given(name: str) -> list[GivenIdentity]:
    return [GivenIdentity(Identity(name, BackendName.STATIC))]


async def test_any_account_is_placed_without_a_configuration(tmp_path: Path) -> None:
    """Without --config explain places users anywhere, as the policy says."""
    decision, identity = await simulate_login(
        snapshot(tmp_path, _USERS), request(), _given("alice"), now=NOW
    )
    assert decision.allowed
    assert decision.grant is not None
    assert decision.grant.account == "APP"
    assert identity == Identity("alice", BackendName.STATIC)


async def test_an_account_the_service_cannot_place_into_is_refused(tmp_path: Path) -> None:
    """The configured accounts decide, like the service's issuer would; no key is needed."""
    decision, _ = await simulate_login(
        snapshot(tmp_path, _USERS),
        request(),
        _given("alice"),
        now=NOW,
        accounts=frozenset({"OTHER"}),
    )
    assert decision.reason is Reason.ACCOUNT_NOT_ALLOWED


async def test_the_system_account_needs_the_policys_consent(tmp_path: Path) -> None:
    """A grant into the system account without allow_system_account is refused."""
    decision, _ = await simulate_login(
        snapshot(tmp_path, _USERS), request(), _given("root"), now=NOW, system_account="SYS"
    )
    assert decision.reason is Reason.ACCOUNT_NOT_ALLOWED
    assert "allow_system_account" in decision.detail


def test_placements_without_keys_answer_only_where_users_may_land() -> None:
    """Placement (one configuration) and ANY_ACCOUNT are the placement seam, not signers."""
    assert Placement(frozenset({"APP"})).can_place("APP")
    assert not Placement(frozenset({"APP"})).can_place("SYS")
    assert ANY_ACCOUNT.can_place("anything")
    assert not hasattr(ANY_ACCOUNT, "grant")
    assert not hasattr(Placement(frozenset()), "grant")
