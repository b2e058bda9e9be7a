"""The LDAP backend's own logic, with a fake directory at the port boundary (the real
python-ldap client is tested against slapd in tests/integration/backends)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callout.backends.ldap import DirectoryUser, LdapBackend, canonical_name
from callout.decision import Decision, Identity, Reason
from callout.policy import PolicySnapshot
from tests.unit.policy.helpers import NOW, request, snapshot

ADMINS = "cn=nats-admins,ou=groups,dc=example,dc=org"


class FakeDirectory:
    def __init__(self, **users: DirectoryUser) -> None:
        self.users = users
        self.calls = 0
        self.closed = False

    async def verify(self, login: str, password: str) -> DirectoryUser | Reason:
        self.calls += 1
        user = self.users.get(login)
        if user is None:
            return Reason.UNKNOWN_USER
        return user if password == f"{login}-pw" else Reason.BAD_CREDENTIALS

    def close(self) -> None:
        self.closed = True


ALICE = DirectoryUser(
    dn="uid=alice,ou=people,dc=example,dc=org",
    login="alice",
    attributes={"department": "eng", "team": "sales.eu"},
    groups=(ADMINS.upper(), "cn=unmapped,ou=groups,dc=example,dc=org"),
)


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    return snapshot(
        tmp_path,
        """
        roles:
          admin: {publish: {allow: ["admin.{{user.attr.department}}.>"]}}
          team: {publish: {allow: ["team.{{user.attr.team}}"]}}
        groups:
          "cn=NATS-Admins, ou=groups, dc=example, dc=org": {roles: [admin]}
          team-members: {roles: [team]}
        """,
    )


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory(alice=ALICE)


async def test_directory_groups_map_to_policy_groups_whatever_their_spelling(
    directory: FakeDirectory, policy: PolicySnapshot
) -> None:
    """LDAP compares DNs case-insensitively; a policy written with other case must still match."""
    identity = await LdapBackend(directory).authenticate(
        request(user="alice", password="alice-pw"), policy
    )
    assert isinstance(identity, Identity)
    assert identity.groups == ("cn=NATS-Admins, ou=groups, dc=example, dc=org",)
    decision = policy.authorize(identity, request(), NOW)
    assert decision.grant is not None
    assert decision.grant.permissions.pub_allow == ("admin.eng.>",)


async def test_the_principal_is_the_directorys_spelling_of_the_login(
    policy: PolicySnapshot,
) -> None:
    """uid matching is case-insensitive; {{user.name}} must not depend on how it was typed."""
    directory = FakeDirectory(Alice=ALICE)
    identity = await LdapBackend(directory).authenticate(
        request(user="Alice", password="Alice-pw"), policy
    )
    assert isinstance(identity, Identity)
    assert identity.principal == "alice"


async def test_an_empty_password_is_refused_before_the_directory_is_asked(
    directory: FakeDirectory, policy: PolicySnapshot
) -> None:
    """An empty simple bind is an anonymous bind that many directories accept."""
    decision = await LdapBackend(directory).authenticate(request(user="alice"), policy)
    assert isinstance(decision, Decision)
    assert decision.reason is Reason.BAD_CREDENTIALS
    assert directory.calls == 0


async def test_a_wrong_password_is_refused_even_when_another_backend_follows(
    directory: FakeDirectory, policy: PolicySnapshot
) -> None:
    """A recognised but wrong credential never falls through to a weaker backend."""
    backend = LdapBackend(directory, final=False)
    decision = await backend.authenticate(request(user="alice", password="nope"), policy)
    assert isinstance(decision, Decision)
    assert decision.reason is Reason.BAD_CREDENTIALS


async def test_an_unknown_user_is_passed_on_only_when_another_backend_follows(
    directory: FakeDirectory, policy: PolicySnapshot
) -> None:
    """Static service accounts after LDAP must still be reachable; alone, LDAP refuses."""
    login = request(user="svc", password="svc-pw")
    assert await LdapBackend(directory, final=False).authenticate(login, policy) is None
    decision = await LdapBackend(directory).authenticate(login, policy)
    assert isinstance(decision, Decision)
    assert decision.reason is Reason.UNKNOWN_USER


async def test_an_attribute_that_could_widen_a_subject_refuses_the_login(
    policy: PolicySnapshot,
) -> None:
    """Directory attributes are template values: 'sales.eu' must not split a subject token."""
    member = DirectoryUser("uid=bob", "bob", {"team": "sales.eu"}, ("team-members",))
    directory = FakeDirectory(bob=member)
    identity = await LdapBackend(directory).authenticate(
        request(user="bob", password="bob-pw"), policy
    )
    assert isinstance(identity, Identity)
    assert policy.authorize(identity, request(), NOW).reason is Reason.UNSAFE_TEMPLATE_VALUE


async def test_tokens_and_nkeys_are_not_the_ldap_backends_business(
    directory: FakeDirectory, policy: PolicySnapshot
) -> None:
    """The LDAP backend only takes user/password logins."""
    backend = LdapBackend(directory)
    assert await backend.authenticate(request(token="nac_x_y"), policy) is None
    assert await backend.authenticate(request(user="alice", nkey="UX"), policy) is None
    assert directory.calls == 0


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("CN=Admins, OU=Groups,DC=Example , DC=org", "cn=admins,ou=groups,dc=example,dc=org"),
        (r"cn=a\, b ,ou=g", r"cn=a\, b,ou=g"),
        ("nats-admins", "nats-admins"),
    ],
)
def test_canonical_names_ignore_case_and_spacing_but_keep_escapes(
    name: str, canonical: str
) -> None:
    """DN spelling must not decide whether a group matches; an escaped comma is data."""
    assert canonical_name(name) == canonical
