"""`policy check` reports every independent problem once: syntax errors first, no cascades."""

from __future__ import annotations

from pathlib import Path

from callout.policy.loader import check_policy
from tests.unit.policy.helpers import ALICE_HASH, HEADER, write

_ROLES = """\
version: 1
defaults: {account: APP}
roles:
  app: {publish: {allow: ["app.>"]}}
  ops: {publish: {allow: ["ops.>"]}}
"""


def _users(*lines: str) -> str:
    return "version: 1\nusers:\n" + "".join(f"  {line}\n" for line in lines)


def _messages(directory: Path) -> list[str]:
    return [str(issue) for issue in check_policy(directory).errors]


def test_a_syntax_error_in_roles_does_not_make_roles_unknown_elsewhere(tmp_path: Path) -> None:
    """One broken file used to produce ten false "unknown role" errors in the others."""
    broken = _ROLES.replace('["app.>"]}}', '["app.>"]}')  # an unclosed flow mapping
    users = [f'u{n}: {{password: "{ALICE_HASH}", roles: [app, ops]}}' for n in range(10)]
    write(tmp_path, roles_yaml=broken, users_yaml=_users(*users))
    messages = _messages(tmp_path)
    assert len(messages) == 1, messages
    assert "roles.yaml" in messages[0]
    assert "invalid YAML" in messages[0]


def test_syntax_errors_come_first(tmp_path: Path) -> None:
    """The real cause is at the top, not sorted into the middle by file name."""
    write(
        tmp_path,
        a_yaml=HEADER + 'users:\n  bob: {password: "x", roles: [nope]}\n',
        z_yaml="version: 1\nroles: {app: [\n",
    )
    messages = _messages(tmp_path)
    assert "z.yaml" in messages[0]
    assert "invalid YAML" in messages[0]
    assert any("a.yaml" in message for message in messages[1:])


def test_a_duplicate_key_does_not_hide_the_other_errors_in_its_file(tmp_path: Path) -> None:
    """The duplicate and an unknown key elsewhere in the same file, in one run."""
    text = HEADER + (
        "roles:\n"
        '  app: {publish: {allow: ["app.>"]}}\n'
        "users:\n"
        f'  alice: {{password: "{ALICE_HASH}", roles: [app]}}\n'
        f'  alice: {{password: "{ALICE_HASH}", roles: [app]}}\n'
        f'  bob: {{password: "{ALICE_HASH}", roles: [app], colour: blue}}\n'
    )
    write(tmp_path, p_yaml=text)
    messages = _messages(tmp_path)
    assert any("duplicate key" in message for message in messages), messages
    assert any("users.bob.colour" in message and "unknown key" in message for message in messages)
    assert len(messages) == 2, messages


def test_unknown_roles_are_reported_even_with_schema_errors_elsewhere(tmp_path: Path) -> None:
    """Fixing the schema error must not reveal a second round of errors."""
    write(
        tmp_path,
        roles_yaml=_ROLES,
        users_yaml=_users(
            f'alice: {{password: "{ALICE_HASH}", roles: [app], expiry: forever}}',
            f'bob: {{password: "{ALICE_HASH}", roles: [nosuchrole]}}',
        ),
    )
    messages = _messages(tmp_path)
    assert any("users.alice.expiry" in message for message in messages), messages
    assert any("unknown role 'nosuchrole'" in message for message in messages), messages
    assert len(messages) == 2, messages


def test_an_entry_with_a_schema_error_does_not_cascade_into_references(tmp_path: Path) -> None:
    """A role with a typo is one error, not also an "unknown role" at every user of it."""
    roles = _ROLES + '  broken: {publish: {allow: ["x.>"]}, colour: red}\n'
    users = [f'u{n}: {{password: "{ALICE_HASH}", roles: [broken]}}' for n in range(3)]
    write(tmp_path, roles_yaml=roles, users_yaml=_users(*users))
    messages = _messages(tmp_path)
    assert len(messages) == 1, messages
    assert "roles.broken.colour" in messages[0]
