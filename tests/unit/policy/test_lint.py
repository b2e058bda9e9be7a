"""`policy check` lint: codes, over-broad grants, unreachable rules, acknowledgements, notes."""

from __future__ import annotations

from callout.policy import check_texts
from tests.unit.policy.helpers import ALICE_HASH, HEADER, texts

BCRYPT = "$2b$04$ZIO36hGHTCY0kqGRKEE7S./EuP4yFj5COBWBzGG4IjxpmdSMFnGM."


def _codes(body: str) -> list[tuple[str, str]]:
    result = check_texts(texts(p_yaml=HEADER + body))
    assert result.errors == []
    return [(w.code, w.path) for w in result.warnings]


def _user(extra: str = "", name: str = "alice", password: str = ALICE_HASH) -> str:
    return f"users:\n  {name}:\n    password: '{password}'\n{extra}"


def test_wildcards_in_the_first_token_are_over_broad_on_either_side() -> None:
    """`>` or `*.x` reach every tenant's subjects; a reviewer must see that."""
    body = _user("    publish: {allow: ['>']}\n    subscribe: {allow: ['*.events', 'app.>']}\n")
    assert _codes(body) == [
        ("over-broad", "users.alice.publish.allow[0]"),
        ("over-broad", "users.alice.subscribe.allow[0]"),
    ]


def test_an_acknowledged_warning_is_listed_apart_and_does_not_fail_strict() -> None:
    """Some grants are broad on purpose; the reason is written next to them, once."""
    body = _user(
        "    publish: {allow: ['>']}\n"
        "    acknowledge: {over-broad: 'the bridge forwards everything'}\n"
    )
    result = check_texts(texts(p_yaml=HEADER + body))
    assert result.warnings == []
    assert [a.code for a in result.acknowledged] == ["over-broad"]


def test_a_stale_acknowledgement_is_a_warning() -> None:
    """An acknowledgement outliving its finding would silently cover a future one."""
    body = _user("    acknowledge: {over-broad: 'was needed once'}\n")
    result = check_texts(texts(p_yaml=HEADER + body))
    assert [w.path for w in result.warnings] == ["users.alice.acknowledge.over-broad"]


def test_an_allow_that_a_deny_always_overrides_is_unreachable() -> None:
    """A grant that can never take effect is a mistake in one of the two entries."""
    body = (
        "roles:\n"
        "  writer: {publish: {allow: ['app.orders.>']}}\n"
        "  guard: {publish: {allow: ['app.public.>'], deny: ['app.orders.>']}}\n"
        + _user("    roles: [writer, guard]\n")
    )
    result = check_texts(texts(p_yaml=HEADER + body))
    unreachable = [w for w in result.warnings if w.code == "unreachable-rule"]
    assert len(unreachable) == 1
    assert "'app.orders.>' (role 'writer')" in unreachable[0].message
    assert "(role 'guard')" in unreachable[0].message


def test_legacy_and_weak_hashes_have_their_own_codes() -> None:
    """Migration dashboards count legacy hashes separately from weak argon2."""
    weak = "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
    body = f"users:\n  a: {{password: '{BCRYPT}'}}\n  b: {{password: '{weak}'}}\n"
    assert _codes(body) == [
        ("legacy-hash", "users.a.password"),
        ("weak-hash", "users.b.password"),
    ]


def test_what_nats_server_does_not_enforce_is_a_note_not_a_warning() -> None:
    """Reviewers should know the service is the only enforcement point; it is not a defect."""
    body = _user("    src: [10.0.0.0/8]\n    connection_types: [STANDARD]\n    tags: [a]\n")
    result = check_texts(texts(p_yaml=HEADER + body))
    assert result.warnings == []
    assert [(n.code, n.path) for n in result.notes] == [
        ("not-enforced", "users.alice.src"),
        ("not-enforced", "users.alice.connection_types"),
        ("not-enforced", "users.alice.tags"),
    ]
