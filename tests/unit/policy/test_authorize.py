"""Deciding a login from a snapshot: grants add up, conditions narrow, templates are safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from callout.decision import Identity, Permissions, Reason, TimeRange
from callout.policy import PolicySnapshot
from tests.unit.policy.helpers import ALICE_HASH, NOW, request, snapshot, static

ALICE = f"users:\n  alice:\n    password: '{ALICE_HASH}'\n"


def alice_with(tmp_path: Path, body: str, extra: str = "") -> PolicySnapshot:
    return snapshot(tmp_path, ALICE + body + extra)


def permissions(policy: PolicySnapshot, identity: Identity | None = None) -> Permissions:
    decision = policy.authorize(identity or static("alice"), request(), NOW)
    assert decision.grant is not None, decision
    return decision.grant.permissions


def test_user_without_grants_gets_explicit_deny_all(tmp_path: Path) -> None:
    """No pub/sub in the JWT means full account access in nats-server; we must say deny."""
    assert permissions(alice_with(tmp_path, "")) == Permissions(pub_deny=(">",), sub_deny=(">",))


def test_side_without_allow_denies_everything_on_that_side(tmp_path: Path) -> None:
    """A deny-only publish block must not leave every other subject open."""
    body = "    publish: {deny: [secret.>]}\n    subscribe: {allow: [app.>]}\n"
    got = permissions(alice_with(tmp_path, body))
    assert (got.pub_allow, got.pub_deny) == ((), (">",))
    assert (got.sub_allow, got.sub_deny) == (("app.>",), ())


def test_permissions_are_the_union_of_roles_and_user(tmp_path: Path) -> None:
    """Holding more roles gives more grants, in a stable order without duplicates."""
    body = "    roles: [a, b]\n    publish: {allow: [own.>]}\n"
    roles = "roles:\n  a: {publish: {allow: [a.>, own.>]}}\n  b: {publish: {allow: [b.>]}}\n"
    assert permissions(alice_with(tmp_path, body, roles)).pub_allow == ("own.>", "a.>", "b.>")


def test_deny_lists_are_kept_alongside_allows(tmp_path: Path) -> None:
    """Deny wins in NATS, so a role's deny must reach the JWT even if another role allows."""
    body = "    roles: [a, b]\n"
    roles = "roles:\n  a: {subscribe: {allow: [app.>]}}\n  b: {subscribe: {deny: [app.secret.>]}}\n"
    got = permissions(alice_with(tmp_path, body, roles))
    assert (got.sub_allow, got.sub_deny) == (("app.>",), ("app.secret.>",))


def test_response_ttl_is_in_nanoseconds(tmp_path: Path) -> None:
    """The user JWT wants the reply window in nanoseconds, not seconds."""
    got = permissions(alice_with(tmp_path, "    response: {max: 3, ttl: 5s}\n"))
    assert (got.has_resp, got.resp_max, got.resp_ttl_ns) == (True, 3, 5_000_000_000)


def test_grant_targets_defaults_account_and_names_the_user(tmp_path: Path) -> None:
    """The account decides where the client lands; the name shows up in server events."""
    grant = alice_with(tmp_path, "").authorize(static("alice"), request(), NOW).grant
    assert grant is not None
    assert (grant.name, grant.account) == ("alice", "APP")


def test_user_account_overrides_role_account(tmp_path: Path) -> None:
    """Most specific wins: user > role > defaults."""
    body = "    account: USERS\n    roles: [r]\n"
    policy = alice_with(tmp_path, body, "roles:\n  r: {account: ROLES}\n")
    grant = policy.authorize(static("alice"), request(), NOW).grant
    assert grant is not None
    assert grant.account == "USERS"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", NOW + 3600),
        ("    expiry: 10m\n", NOW + 600),
        ("    expiry: 10h\n    max_expiry: 2h\n", NOW + 7200),
        ("    roles: [short]\n", NOW + 60),
    ],
)
def test_expiry_defaults_to_one_hour_and_is_capped(
    tmp_path: Path, body: str, expected: int
) -> None:
    """The JWT lifetime bounds how long a revoked user keeps access."""
    policy = alice_with(tmp_path, body, "roles:\n  short: {max_expiry: 1m}\n")
    grant = policy.authorize(static("alice"), request(), NOW).grant
    assert grant is not None
    assert grant.expires == expected


def test_expiry_is_capped_by_the_credential(tmp_path: Path) -> None:
    """A token that ends in 5 minutes must not yield a JWT valid for an hour."""
    grant = (
        alice_with(tmp_path, "")
        .authorize(static("alice", expires_at=NOW + 300), request(), NOW + 0.7)
        .grant
    )
    assert grant is not None
    assert grant.expires == NOW + 300


def test_expired_credential_is_denied(tmp_path: Path) -> None:
    """A credential past its own expiry gets no JWT at all."""
    decision = alice_with(tmp_path, "").authorize(static("alice", expires_at=NOW), request(), NOW)
    assert decision.reason is Reason.CREDENTIAL_EXPIRED


def test_user_removed_by_reload_is_unknown(tmp_path: Path) -> None:
    """Authorization uses the snapshot it is given; a vanished user is denied."""
    decision = alice_with(tmp_path, "").authorize(static("mallory"), request(), NOW)
    assert decision.reason is Reason.UNKNOWN_USER


def test_template_fills_in_the_user_name(tmp_path: Path) -> None:
    """Private subject trees are the main use of templates."""
    body = "    publish: {allow: ['user.{{user.name}}.>']}\n"
    assert permissions(alice_with(tmp_path, body)).pub_allow == ("user.alice.>",)


def test_templates_fill_attributes_server_and_account(tmp_path: Path) -> None:
    """Every documented variable renders from the identity or the request."""
    subjects = [
        "a.{{user.attr.dept}}",
        "b.{{ server.tag.Region }}",
        "c.{{server.name}}.{{server.cluster}}",
        "d.{{user.account}}.{{client.name}}",
    ]
    body = f"    subscribe: {{allow: {subjects}}}\n"
    policy = alice_with(tmp_path, body)
    identity = static("alice", attributes={"dept": "ops"})
    req = request(client_name="app1", server={"cluster": "c1", "tags": ["region:eu-1"]})
    grant = policy.authorize(identity, req, NOW).grant
    assert grant is not None
    assert grant.permissions.sub_allow == ("a.ops", "b.eu-1", "c.n1.c1", "d.APP.app1")


@pytest.mark.parametrize("value", ["a.>", ">", "*", "a.b", "a b", "a\tb", "", "x\x00", "\u00a0"])
def test_unsafe_template_value_denies_the_whole_login(tmp_path: Path, value: str) -> None:
    """A user named `a.>` must never widen `user.{{user.name}}` into a wildcard grant."""
    body = "    subscribe: {allow: ['user.{{user.attr.team}}.>']}\n"
    identity = static("alice", attributes={"team": value})
    decision = alice_with(tmp_path, body).authorize(identity, request(), NOW)
    assert decision.reason is Reason.UNSAFE_TEMPLATE_VALUE
    assert decision.grant is None


def test_unsafe_value_in_a_deny_entry_also_denies(tmp_path: Path) -> None:
    """Silently dropping a deny entry would widen access, so it fails closed too."""
    body = "    publish: {allow: [app.>], deny: ['app.{{user.attr.x}}']}\n"
    decision = alice_with(tmp_path, body).authorize(static("alice"), request(), NOW)
    assert decision.reason is Reason.UNSAFE_TEMPLATE_VALUE


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("10.1.2.3", True),
        ("192.168.1.1", False),
        ("::ffff:10.9.9.9", True),
        ("2001:db8::7", True),
        ("2001:db9::7", False),
        ("", False),
        ("not-an-ip", False),
    ],
)
def test_source_networks_are_enforced_by_the_service(
    tmp_path: Path, host: str, allowed: bool
) -> None:
    """nats-server ignores `src` for callout users, so the service must check it."""
    policy = alice_with(tmp_path, "    src: [10.0.0.0/8, '2001:db8::/32']\n")
    decision = policy.authorize(static("alice"), request(host=host), NOW)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason is Reason.SOURCE_NOT_ALLOWED


def test_src_of_user_and_role_must_both_hold(tmp_path: Path) -> None:
    """Conditions narrow: a role restricted to a subnet cannot be escaped by the user's src."""
    body = "    src: [10.0.0.0/8]\n    roles: [lab]\n"
    policy = alice_with(tmp_path, body, "roles:\n  lab: {src: [10.1.0.0/16]}\n")
    assert not policy.authorize(static("alice"), request(host="10.2.0.1"), NOW).allowed
    grant = policy.authorize(static("alice"), request(host="10.1.0.1"), NOW).grant
    assert grant is not None
    assert grant.src == ("10.1.0.0/16",)


@pytest.mark.parametrize(
    ("kind", "client_type", "allowed"),
    [
        ("Client", "nats", True),
        ("Client", "", True),
        ("Client", "websocket", False),
        ("Client", "mqtt", True),
        ("Leafnode", "", False),
    ],
)
def test_connection_types_are_enforced_by_the_service(
    tmp_path: Path, kind: str, client_type: str, allowed: bool
) -> None:
    """nats-server does not enforce allowed_connection_types for callout users."""
    policy = alice_with(tmp_path, "    connection_types: [STANDARD, MQTT]\n")
    decision = policy.authorize(static("alice"), request(kind=kind, client_type=client_type), NOW)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason is Reason.CONNECTION_TYPE_NOT_ALLOWED


def test_leafnode_matches_either_leafnode_type(tmp_path: Path) -> None:
    """The request cannot tell LEAFNODE from LEAFNODE_WS, so either one admits a leaf."""
    policy = alice_with(tmp_path, "    connection_types: [LEAFNODE_WS]\n")
    assert policy.authorize(static("alice"), request(kind="Leafnode", client_type=""), NOW).allowed


def test_conditions_are_copied_into_the_grant(tmp_path: Path) -> None:
    """The JWT carries the conditions too, so the server applies what it does enforce."""
    body = (
        "    src: [10.0.0.0/8]\n    connection_types: [WEBSOCKET, STANDARD]\n"
        "    times: [{start: '08:00:00', end: '18:00:00'}]\n    times_location: Europe/Berlin\n"
    )
    grant = (
        alice_with(tmp_path, body).authorize(static("alice"), request(host="10.0.0.1"), NOW).grant
    )
    assert grant is not None
    assert grant.src == ("10.0.0.0/8",)
    assert grant.connection_types == ("STANDARD", "WEBSOCKET")
    assert grant.times == (TimeRange("08:00:00", "18:00:00"),)
    assert grant.times_location == "Europe/Berlin"


@pytest.mark.parametrize(
    ("window", "zone", "allowed"),
    [
        (("07:00:00", "09:00:00"), "UTC", True),  # NOW is 08:00 UTC
        (("09:00:00", "17:00:00"), "UTC", False),
        (("22:00:00", "08:30:00"), "UTC", True),  # wraps midnight
        (("22:00:00", "07:59:59"), "UTC", False),
        (("08:30:00", "09:30:00"), "Europe/Berlin", True),  # 09:00 in Berlin in January
        (("08:30:00", "09:30:00"), "America/New_York", False),  # 03:00 in New York
    ],
)
def test_time_windows_are_checked_in_their_zone(
    tmp_path: Path, window: tuple[str, str], zone: str, allowed: bool
) -> None:
    """Windows give a precise deny reason and must agree with the server's zone handling."""
    body = (
        f"    times: [{{start: '{window[0]}', end: '{window[1]}'}}]\n    times_location: {zone}\n"
    )
    decision = alice_with(tmp_path, body).authorize(static("alice"), request(), NOW)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason is Reason.OUTSIDE_TIME_WINDOW


def test_times_without_zone_are_utc_and_say_so(tmp_path: Path) -> None:
    """The server would use its own local zone; naming UTC keeps both checks in agreement."""
    body = "    times: [{start: '07:00:00', end: '09:00:00'}]\n"
    grant = alice_with(tmp_path, body).authorize(static("alice"), request(), NOW).grant
    assert grant is not None
    assert grant.times_location == "UTC"


GROUPS = """\
roles:
  read: {subscribe: {allow: [app.>]}}
  write: {publish: {allow: [app.>]}, account: APP}
  ops: {publish: {allow: [ops.>]}, account: OPS, allow_system_account: true}
groups:
  readers: {roles: [read]}
  writers: {roles: [write]}
  operators: {roles: [ops]}
"""


def test_external_identity_gets_roles_through_its_groups(tmp_path: Path) -> None:
    """LDAP/OIDC users are not listed; their groups map to roles."""
    policy = alice_with(tmp_path, "", GROUPS)
    identity = Identity("carol", "ldap", groups=("readers", "writers", "unmapped"))
    got = permissions(policy, identity)
    assert (got.pub_allow, got.sub_allow) == (("app.>",), ("app.>",))


def test_external_identity_without_mapped_group_is_denied(tmp_path: Path) -> None:
    """Deny by default: being authenticated is not being authorized."""
    decision = alice_with(tmp_path, "", GROUPS).authorize(
        Identity("carol", "ldap", groups=("strangers",)), request(), NOW
    )
    assert decision.reason is Reason.NO_MATCHING_RULE


def test_groups_mapping_to_different_accounts_are_denied(tmp_path: Path) -> None:
    """A login can only land in one account; guessing would be a privilege decision."""
    decision = alice_with(tmp_path, "", GROUPS).authorize(
        Identity("carol", "ldap", groups=("writers", "operators")), request(), NOW
    )
    assert decision.reason is Reason.ACCOUNT_NOT_ALLOWED


def test_system_account_permission_comes_from_roles(tmp_path: Path) -> None:
    """The pipeline guards the system account; only a role can open it."""
    policy = alice_with(tmp_path, "", GROUPS)
    assert policy.allows_system_account(Identity("o", "ldap", groups=("operators",)))
    assert not policy.allows_system_account(Identity("r", "ldap", groups=("readers",)))
    assert not policy.allows_system_account(static("alice"))
