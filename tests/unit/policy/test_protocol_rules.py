"""Protocol-aware rules: MQTT client ids bound to the identity, leafnodes only where a rule
names them, and proxy_required carried into the user JWT."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callout.decision import Identity, Reason
from callout.errors import PolicyError
from callout.policy import PolicySnapshot, load_policy
from callout.policy.clientids import parse_client_id
from callout.policy.loader import check_policy
from callout.protocol.claims import AuthRequest, user_claims
from tests.policycli import policy_cli
from tests.unit.policy.helpers import ALICE_HASH, HEADER, NOW, request, snapshot, static, write

ALICE = f"users:\n  alice:\n    password: '{ALICE_HASH}'\n"
SENSORS = "groups:\n  sensors: {roles: [sensor]}\n"


def mqtt(client_id: str) -> AuthRequest:
    """An MQTT CONNECT as nats-server forwards it: type mqtt, the id in client_info.mqtt_id."""
    base = request(client_type="mqtt")
    return replace(base, client=replace(base.client, mqtt_id=client_id))


def sensor_policy(tmp_path: Path, patterns: str) -> PolicySnapshot:
    role = f"roles:\n  sensor:\n    mqtt_client_id: {patterns}\n    publish: {{allow: [s.>]}}\n"
    return snapshot(tmp_path, role + SENSORS)


def member(name: str) -> Identity:
    return Identity(principal=name, backend="ldap", groups=("sensors",))


@pytest.mark.parametrize(
    ("name", "client_id", "allowed"),
    [
        ("dev-7", "dev-7", True),
        ("dev-7", "dev-7-kitchen", True),
        ("dev-7", "dev-7-", True),
        ("dev-7", "dev-70", False),
        ("dev-7", "dev-8-kitchen", False),
        ("dev-7", "", False),
        ("dev*", "dev-7-kitchen", False),
        ("dev*", "dev*-x", True),
        ("a.b", "a.b", True),
    ],
    ids=[
        "exact",
        "prefix",
        "empty-suffix",
        "not-a-prefix",
        "another-user",
        "no-id",
        "star-in-name-is-literal",
        "star-in-name-own",
        "dot-is-literal",
    ],
)
def test_an_mqtt_client_id_must_be_the_user_name_or_start_with_it(
    tmp_path: Path, name: str, client_id: str, allowed: bool
) -> None:
    """Taking over another client's session id is refused; a name never widens a pattern."""
    policy = sensor_policy(tmp_path, '["{{user.name}}", "{{user.name}}-*"]')
    decision = policy.authorize(member(name), mqtt(client_id), NOW)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason is Reason.MQTT_CLIENT_ID_NOT_ALLOWED


def test_client_id_patterns_bind_mqtt_clients_only(tmp_path: Path) -> None:
    """A NATS or websocket client has no MQTT session to take over."""
    policy = sensor_policy(tmp_path, '["{{user.name}}"]')
    assert policy.authorize(member("dev-7"), request(), NOW).allowed
    assert policy.authorize(member("dev-7"), request(client_type="websocket"), NOW).allowed


def test_an_empty_template_value_matches_no_client_id(tmp_path: Path) -> None:
    """A missing attribute must not leave `*` alone in the pattern."""
    policy = sensor_policy(tmp_path, '["{{user.attr.site}}-*"]')
    decision = policy.authorize(member("dev-7"), mqtt("-anything"), NOW)
    assert decision.reason is Reason.MQTT_CLIENT_ID_NOT_ALLOWED
    sited = replace(member("dev-7"), attributes={"site": "berlin"})
    assert policy.authorize(sited, mqtt("berlin-7"), NOW).allowed


def test_every_list_must_hold_when_a_user_and_its_role_both_have_one(tmp_path: Path) -> None:
    """Conditions narrow: the user's own list and its role's list both apply."""
    body = '    mqtt_client_id: ["{{user.name}}-*"]\n    roles: [site]\n'
    role = 'roles:\n  site: {mqtt_client_id: ["*-berlin"], publish: {allow: [s.>]}}\n'
    policy = snapshot(tmp_path, ALICE + body + role)
    assert policy.authorize(static("alice"), mqtt("alice-berlin"), NOW).allowed
    assert not policy.authorize(static("alice"), mqtt("alice-paris"), NOW).allowed
    assert not policy.authorize(static("alice"), mqtt("bob-berlin"), NOW).allowed


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ('["*"]', "admits every client id"),
        ('["**"]', "admits every client id"),
        ('["{{user.nme}}-*"]', "unknown template variable"),
        ('["{{user.name}"]', "unbalanced template braces"),
        ("[]", "at least 1 item"),
    ],
    ids=["star", "stars", "unknown-variable", "braces", "empty-list"],
)
def test_client_id_patterns_that_bind_nothing_are_load_errors(
    tmp_path: Path, pattern: str, problem: str
) -> None:
    """A pattern that admits any id, or cannot be filled, is caught by `policy check`."""
    text = HEADER + f"roles:\n  sensor:\n    mqtt_client_id: {pattern}\n" + SENSORS
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, p_yaml=text))
    (issue,) = caught.value.issues
    assert problem in issue.message
    assert issue.line == 5


def test_a_leafnode_is_admitted_only_by_rules_that_name_leafnode(tmp_path: Path) -> None:
    """A user's password reused as a leaf remote's credentials must not bridge an account."""
    leaf = request(kind="Leafnode", client_type="")
    plain = snapshot(tmp_path, ALICE)
    decision = plain.authorize(static("alice"), leaf, NOW)
    assert decision.reason is Reason.CONNECTION_TYPE_NOT_ALLOWED
    assert plain.authorize(static("alice"), request(), NOW).allowed
    bridge = snapshot(tmp_path, ALICE + "    connection_types: [STANDARD, LEAFNODE]\n")
    assert bridge.authorize(static("alice"), leaf, NOW).allowed


def test_proxy_required_on_a_role_reaches_the_user_jwt(tmp_path: Path) -> None:
    """nats-server (2.12+) refuses such a user unless it came through a trusted proxy."""
    role = "roles:\n  edge: {proxy_required: true, publish: {allow: [e.>]}}\n"
    policy = snapshot(tmp_path, ALICE + "    roles: [edge]\n" + role)
    grant = policy.authorize(static("alice"), request(), NOW).grant
    assert grant is not None
    assert grant.proxy_required
    assert user_claims(grant, "UUSER", audience="APP")["nats"]["proxy_required"] is True
    assert user_claims(grant, "UUSER", audience=None, scoped=True)["nats"]["proxy_required"]
    other = snapshot(tmp_path, ALICE).authorize(static("alice"), request(), NOW).grant
    assert other is not None
    assert "proxy_required" not in user_claims(other, "UUSER", audience="APP")["nats"]


@pytest.mark.parametrize(
    ("client_id", "reason"),
    [("dev-7-kitchen", "allowed"), ("dev-8", "mqtt_client_id_not_allowed")],
)
def test_policy_explain_takes_an_mqtt_client_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], client_id: str, reason: str
) -> None:
    """A reviewer can check which MQTT client ids a member may use, without a server."""
    role = 'roles:\n  sensor:\n    mqtt_client_id: ["{{user.name}}", "{{user.name}}-*"]\n'
    (tmp_path / "policy.yaml").write_text(HEADER + role + "    publish: {allow: [s.>]}\n" + SENSORS)
    argv = ["--identity", "dev-7", "--backend", "ldap", "--group", "sensors", "--json"]
    mqtt_argv = ["--connection-type", "MQTT", "--mqtt-client-id", client_id]
    assert policy_cli("policy", "explain", str(tmp_path), *argv, *mqtt_argv) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == reason


def test_admitting_mqtt_without_client_id_patterns_is_a_warning(tmp_path: Path) -> None:
    """Naming MQTT on purpose but binding no client id leaves every session open to takeover;
    a pattern on the user or any of its roles settles it."""
    role = "roles:\n  mqtt: {connection_types: [MQTT], publish: {allow: [s.>]}}\n"
    group = "groups:\n  devices: {roles: [mqtt]}\n"
    body = ALICE + "    roles: [mqtt]\n" + role + group
    result = check_policy(write(tmp_path, p_yaml=HEADER + body))
    assert sorted((w.code, w.path) for w in result.warnings) == [
        ("mqtt-client-id", "groups.devices"),
        ("mqtt-client-id", "users.alice"),
    ]
    bound = body.replace(
        "roles: [mqtt]\n", 'roles: [mqtt]\n    mqtt_client_id: ["{{user.name}}"]\n', 1
    )
    result = check_policy(write(tmp_path, p_yaml=HEADER + bound))
    assert [(w.code, w.path) for w in result.warnings] == [("mqtt-client-id", "groups.devices")]


@given(
    literals=st.lists(st.text("ab-", max_size=3), min_size=1, max_size=4),
    client_id=st.text("ab-", max_size=8),
)
def test_client_id_wildcards_match_exactly_as_shell_globs_do(
    literals: list[str], client_id: str
) -> None:
    """The matcher (no regex, no cache) agrees with fnmatch on `*`-only patterns."""
    pattern = "*".join(literals)
    if not pattern.strip("*"):
        return  # a pattern of stars only is refused at load
    expected = fnmatch.fnmatchcase(client_id, pattern)
    assert parse_client_id(pattern).matches(client_id, lambda _: "") is expected
