"""Grants by intent: the exact subjects each intent compiles to (snapshots, checked on the wire
by tests/integration/test_intents.py), templates in intents, private inboxes, bad intents."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from callout.decision import Identity, Permissions, Reason
from callout.errors import PolicyError
from callout.policy import PolicySnapshot
from callout.policy.intents import inbox_prefix
from tests.unit.policy.helpers import ALICE_HASH, NOW, request, snapshot, static

ALICE = f"users:\n  alice:\n    password: '{ALICE_HASH}'\n"


def permissions(policy: PolicySnapshot, user: str = "alice") -> Permissions:
    decision = policy.authorize(static(user), request(), NOW)
    assert decision.grant is not None, decision
    return decision.grant.permissions


def granted(tmp_path: Path, body: str) -> Permissions:
    return permissions(snapshot(tmp_path, ALICE + body))


def test_jetstream_consume_is_info_next_ack_and_flow_control(tmp_path: Path) -> None:
    got = granted(tmp_path, "    jetstream: [{stream: ORDERS, consume: [worker]}]\n")
    assert got.pub_allow == (
        "$JS.API.STREAM.INFO.ORDERS",
        "$JS.API.CONSUMER.INFO.ORDERS.worker",
        "$JS.API.CONSUMER.MSG.NEXT.ORDERS.worker",
        "$JS.ACK.ORDERS.worker.>",
        "$JS.FC.ORDERS.>",
    )
    assert (got.sub_allow, got.sub_deny) == ((), (">",))  # replies need an inbox grant


def test_jetstream_any_consumer_and_a_domain(tmp_path: Path) -> None:
    """A domain grants both API prefixes: a server of that domain maps ``$JS.hub.API`` to
    ``$JS.API`` before it checks permissions."""
    got = granted(tmp_path, '    jetstream: [{stream: ORDERS, consume: ["*"], domain: hub}]\n')
    assert got.pub_allow == (
        "$JS.hub.API.STREAM.INFO.ORDERS",
        "$JS.hub.API.CONSUMER.INFO.ORDERS.*",
        "$JS.hub.API.CONSUMER.MSG.NEXT.ORDERS.*",
        "$JS.API.STREAM.INFO.ORDERS",
        "$JS.API.CONSUMER.INFO.ORDERS.*",
        "$JS.API.CONSUMER.MSG.NEXT.ORDERS.*",
        "$JS.ACK.ORDERS.*.>",
        "$JS.FC.ORDERS.>",
    )


def test_jetstream_publish_is_the_named_subjects(tmp_path: Path) -> None:
    body = (
        '    jetstream: [{stream: ORDERS, publish: true, subjects: ["orders.{{user.name}}.>"]}]\n'
    )
    got = granted(tmp_path, body)
    assert got.pub_allow == ("$JS.API.STREAM.INFO.ORDERS", "orders.alice.>")


def test_jetstream_manage_is_one_streams_lifecycle(tmp_path: Path) -> None:
    got = granted(tmp_path, "    jetstream: [{stream: S, manage: true}]\n")
    assert got.pub_allow == (
        "$JS.API.STREAM.INFO.S",
        "$JS.API.STREAM.CREATE.S",
        "$JS.API.STREAM.UPDATE.S",
        "$JS.API.STREAM.DELETE.S",
        "$JS.API.STREAM.PURGE.S",
        "$JS.API.STREAM.MSG.DELETE.S",
        "$JS.API.STREAM.MSG.GET.S",
        "$JS.API.CONSUMER.CREATE.S",
        "$JS.API.CONSUMER.CREATE.S.>",
        "$JS.API.CONSUMER.DURABLE.CREATE.S.*",
        "$JS.API.CONSUMER.DELETE.S.*",
        "$JS.API.CONSUMER.INFO.S.*",
        "$JS.API.CONSUMER.NAMES.S",
        "$JS.API.CONSUMER.LIST.S",
    )


def test_kv_with_a_key_filter_reads_and_writes_only_those_keys(tmp_path: Path) -> None:
    """Part of a bucket: direct gets and filtered consumers only, whose subjects name the key
    (a message get or an unfiltered consumer would take any key from the payload)."""
    body = '    kv: [{bucket: profiles, read: true, write: true, keys: "users.{{user.name}}.>"}]\n'
    got = granted(tmp_path, body)
    assert got.pub_allow == (
        "$JS.API.STREAM.INFO.KV_profiles",
        "$JS.API.DIRECT.GET.KV_profiles.$KV.profiles.users.alice.>",
        "$JS.API.CONSUMER.CREATE.KV_profiles.*.$KV.profiles.users.alice.>",
        "$JS.FC.KV_profiles.>",
        "$KV.profiles.users.alice.>",
    )


def test_kv_whole_bucket_read_also_gets_and_watches(tmp_path: Path) -> None:
    got = granted(tmp_path, "    kv: [{bucket: settings, read: true}]\n")
    assert got.pub_allow == (
        "$JS.API.STREAM.INFO.KV_settings",
        "$JS.API.DIRECT.GET.KV_settings.$KV.settings.>",
        "$JS.API.CONSUMER.CREATE.KV_settings.*.$KV.settings.>",
        "$JS.API.DIRECT.GET.KV_settings",
        "$JS.API.STREAM.MSG.GET.KV_settings",
        "$JS.API.CONSUMER.CREATE.KV_settings",
        "$JS.API.CONSUMER.INFO.KV_settings.*",
        "$JS.FC.KV_settings.>",
    )


def test_object_store_read_and_write(tmp_path: Path) -> None:
    got = granted(tmp_path, "    object_store: [{bucket: files, read: true, write: true}]\n")
    assert got.pub_allow == (
        "$JS.API.STREAM.INFO.OBJ_files",
        "$JS.API.STREAM.MSG.GET.OBJ_files",
        "$JS.API.DIRECT.GET.OBJ_files.$O.files.M.>",
        "$JS.API.STREAM.NAMES",
        "$JS.API.CONSUMER.CREATE.OBJ_files",
        "$JS.API.CONSUMER.CREATE.OBJ_files.>",
        "$JS.FC.OBJ_files.>",
        "$O.files.C.>",
        "$O.files.M.>",
        "$JS.API.STREAM.PURGE.OBJ_files",
    )


def test_service_call_publishes_and_serve_subscribes_with_responses(tmp_path: Path) -> None:
    call = granted(tmp_path, "    service: [{name: echo, call: true}]\n")
    discovery = ("PING", "INFO", "STATS")
    assert call.pub_allow == (
        "echo",
        "echo.>",
        *(f"$SRV.{verb}.echo" for verb in discovery),
        *(f"$SRV.{verb}.echo.*" for verb in discovery),
    )
    assert not call.has_resp
    serve = granted(tmp_path, '    service: [{name: echo, serve: true, subjects: ["svc.echo"]}]\n')
    assert serve.sub_allow == (
        "svc.echo",
        *(
            s
            for verb in discovery
            for s in (f"$SRV.{verb}", f"$SRV.{verb}.echo", f"$SRV.{verb}.echo.*")
        ),
    )
    assert (serve.has_resp, serve.resp_max, serve.resp_ttl_ns) == (True, 1, 120_000_000_000)
    assert serve.pub_allow == ()  # answers go through the response permission only


def test_intents_add_to_raw_grants_of_the_user_and_its_roles(tmp_path: Path) -> None:
    body = (
        "    roles: [reader]\n    publish: {allow: [app.>]}\n"
        "roles:\n  reader:\n    kv: [{bucket: settings, write: true}]\n"
    )
    got = granted(tmp_path, body)
    assert got.pub_allow == ("app.>", "$JS.API.STREAM.INFO.KV_settings", "$KV.settings.>")


def test_private_inbox_is_a_hash_of_backend_and_principal(tmp_path: Path) -> None:
    got = granted(tmp_path, "    private_inbox: true\n")
    digest = hashlib.sha256(b"static:alice").hexdigest()[:32]
    assert got.sub_allow == (f"_INBOX_{digest}.>",)
    assert inbox_prefix("static", "alice") == f"_INBOX_{digest}"
    assert inbox_prefix("ldap", "alice") != inbox_prefix("static", "alice")


@pytest.mark.parametrize(
    "raw", ["_INBOX.>", ">", "*.>", "_INBOX_{{user.name}}.>", "{{user.name}}.>"]
)
def test_private_inbox_next_to_a_grant_on_other_inboxes_is_refused(
    tmp_path: Path, raw: str
) -> None:
    """A private inbox means nothing if the same identity may read every inbox."""
    body = f"    private_inbox: true\n    subscribe: {{allow: ['{raw}']}}\n"
    with pytest.raises(PolicyError) as caught:
        snapshot(tmp_path, ALICE + body)
    assert f"subscribe allow {raw!r} reaches other identities' inboxes" in str(caught.value)


MERGED_GROUPS = """\
roles:
  replies: {private_inbox: true, service: [{name: echo, call: true}]}
  wide: {subscribe: {allow: ['RAW']}}
  narrow: {subscribe: {allow: [app.>]}}
groups:
  callers: {roles: [replies]}
  watchers: {roles: [wide]}
  readers: {roles: [narrow]}
"""


@pytest.mark.parametrize("raw", [">", "_INBOX.>", "*.>", "_INBOX_x.>"])
@pytest.mark.parametrize("backend", ["ldap", "oidc"])
def test_private_inbox_merged_with_a_group_reaching_other_inboxes_is_refused(
    tmp_path: Path, raw: str, backend: str
) -> None:
    """Two groups that are each fine at load can together read everyone's replies: the login
    fails closed, and the detail names both groups and the entry."""
    policy = snapshot(tmp_path, MERGED_GROUPS.replace("RAW", raw))
    merged = Identity("carol", backend, groups=("watchers", "callers"))
    decision = policy.authorize(merged, request(), NOW)
    assert decision.grant is None
    assert decision.reason is Reason.CONFLICTING_GRANTS
    assert decision.detail == (
        f"private_inbox of group 'callers' and subscribe allow {raw!r} of group 'watchers':"
        " together they reach other identities' inboxes"
    )
    for alone in ("callers", "watchers"):  # each group on its own still logs in
        single = Identity("carol", backend, groups=(alone,))
        assert policy.authorize(single, request(), NOW).grant is not None, alone


def test_private_inbox_merged_with_unrelated_grants_keeps_both(tmp_path: Path) -> None:
    """Only a grant on other inboxes conflicts: the union of the rest is granted as usual."""
    policy = snapshot(tmp_path, MERGED_GROUPS.replace("RAW", ">"))
    identity = Identity("carol", "ldap", groups=("readers", "callers", "unmapped"))
    decision = policy.authorize(identity, request(), NOW)
    assert decision.grant is not None, decision
    own = f"{inbox_prefix('ldap', 'carol')}.>"
    assert decision.grant.permissions.sub_allow == (own, "app.>")


def test_a_user_name_in_an_intent_template_can_never_widen_the_grant(tmp_path: Path) -> None:
    """The same sanitising as every template: a directory name with a wildcard or a dot
    refuses the login instead of reaching other keys."""
    roles = "roles:\n  kvw:\n    kv: [{bucket: p, write: true, keys: 'u.{{user.name}}.>'}]\n"
    policy = snapshot(tmp_path, "groups:\n  devs: {roles: [kvw]}\n" + roles)
    for name in ("a.>", "*", "b.c", ">"):
        decision = policy.authorize(Identity(name, "ldap", groups=("devs",)), request(), NOW)
        assert decision.reason is Reason.UNSAFE_TEMPLATE_VALUE, name
    decision = policy.authorize(Identity("bob", "ldap", groups=("devs",)), request(), NOW)
    assert decision.grant is not None
    assert "$KV.p.u.bob.>" in decision.grant.permissions.pub_allow


def test_a_user_named_after_an_inbox_cannot_reach_its_replies(tmp_path: Path) -> None:
    """``{{user.name}}.>`` must not become another identity's private (or the shared) inbox."""
    roles = "roles:\n  own:\n    subscribe: {allow: ['{{user.name}}.>']}\n"
    policy = snapshot(tmp_path, "groups:\n  devs: {roles: [own]}\n" + roles)
    for name in (inbox_prefix("static", "alice"), "_INBOX", "_INBOX_x"):
        decision = policy.authorize(Identity(name, "ldap", groups=("devs",)), request(), NOW)
        assert decision.reason is Reason.UNSAFE_TEMPLATE_VALUE, name
    alice = permissions(snapshot(tmp_path, ALICE + "    private_inbox: true\n"))
    assert alice.sub_allow == (f"{inbox_prefix('static', 'alice')}.>",)  # derived: allowed


@pytest.mark.parametrize(
    ("intent", "message"),
    [
        ("jetstream: [{stream: ORDERS, publish: true}]", "publish: true needs subjects"),
        ("jetstream: [{stream: ORDERS}]", "grants nothing"),
        ("jetstream: [{stream: 'ORD.ERS', consume: [w]}]", "should match pattern"),
        ("jetstream: [{stream: '>', consume: [w]}]", "should match pattern"),
        ("jetstream: [{stream: S, consume: ['*', w]}]", "already covers every consumer"),
        ("kv: [{bucket: b}]", "grants nothing"),
        ("kv: [{bucket: b, read: true, keys: 'a..b'}]", "empty token"),
        ("object_store: [{bucket: 'a b', read: true}]", "should match pattern"),
        ("service: [{name: echo}]", "grants nothing"),
        ("kv: [{bucket: b, read: 'yes'}]", "valid boolean"),
    ],
)
def test_bad_intents_are_refused_with_the_reason(tmp_path: Path, intent: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        snapshot(tmp_path, ALICE + f"    {intent}\n")
    assert message in str(caught.value)
