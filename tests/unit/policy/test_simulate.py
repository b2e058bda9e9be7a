"""`simulate_login`: the service's decision with account placement only, nothing signed."""

from __future__ import annotations

from pathlib import Path

import pytest

from callout.decision import BackendName, Identity, Reason
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.service.pipeline import authorize_request
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


class _Directory:
    """A directory backend at its port: it has verified whoever the test names."""

    name = BackendName.LDAP

    def __init__(self, principal: str) -> None:
        self.principal = principal

    async def authenticate(self, request: AuthRequest, policy: PolicySnapshot) -> Identity:
        return Identity(self.principal, BackendName.LDAP, groups=("staff",))


_STAFF = "groups:\n  staff: {roles: [staff]}\nroles:\n  staff: {publish: {allow: [app.>]}}\n"


@pytest.mark.parametrize(
    ("name", "scoped", "allowed"),
    [
        ("alice", True, True),
        ("a.>", True, False),  # user.{{name()}}.> would become user.a.>.>: wider than meant
        ("*", True, False),
        ("alice@example.com", True, False),  # 'alice@example' would cover its subjects
        ("a.>", False, True),  # no template: the name is only a label (our templates check it)
    ],
)
async def test_a_scoped_key_never_signs_a_name_that_could_widen_its_template(
    tmp_path: Path, name: str, scoped: bool, allowed: bool
) -> None:
    """nats-server fills a scoped signing key's template ({{name()}}) with the user JWT's
    name, checking only that the result is a valid subject; so the service refuses names that
    are not safe inside one subject token for accounts signed that way."""
    placement = Placement(frozenset({"APP"}), scoped=frozenset({"APP"} if scoped else ()))
    decision = await authorize_request(
        request(), snapshot(tmp_path, _STAFF), [_Directory(name)], placement, now=NOW
    )
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason is Reason.UNSAFE_TEMPLATE_VALUE
        assert name not in decision.detail
