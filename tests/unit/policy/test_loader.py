"""Compiling a policy, and reading it from a directory: every error with its file and line.

What the files say is checked on plain texts (`compile_texts`); what the directory holds
(missing, empty, dot-files, symlinks) on files (`load_policy`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from callout.errors import PolicyError, PolicyIssue
from callout.policy import check_texts, compile_texts, load_policy
from tests.unit.policy.helpers import ALICE_HASH, HEADER, texts, write


def errors_of(policy: Path | Mapping[str, str]) -> list[PolicyIssue]:
    """The errors of a directory (read from disk) or of file texts (compiled as given)."""
    load = load_policy if isinstance(policy, Path) else compile_texts
    with pytest.raises(PolicyError) as caught:
        load(policy)  # type: ignore[operator] - the branch above matches the argument
    return caught.value.issues


def only_error(policy: Path | Mapping[str, str]) -> PolicyIssue:
    issues = errors_of(policy)
    assert len(issues) == 1, issues
    return issues[0]


def user_file(body: str) -> str:
    return HEADER + "users:\n  alice:\n    password: '" + ALICE_HASH + "'\n" + body


def test_valid_policy_loads_into_snapshot(tmp_path: Path) -> None:
    """The happy path: a user with a password hash is known to the snapshot."""
    policy = load_policy(write(tmp_path, p_yaml=user_file("")))
    assert policy.password_user("alice") is not None
    assert policy.source == str(tmp_path)


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    """An empty mount must not load as an empty policy that denies everyone silently."""
    issue = only_error(tmp_path)
    assert "no *.yaml" in issue.message


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    """A wrong path is reported, not raised as an OSError."""
    assert "not a directory" in only_error(tmp_path / "nope").message


def test_malformed_yaml_reports_its_line() -> None:
    """Security teams need the line of a syntax error."""
    issue = only_error(texts(p_yaml="version: 1\nroles:\n  a: [\n"))
    assert issue.file.endswith("p.yaml")
    assert issue.line == 4
    assert issue.message.startswith("invalid YAML")


def test_duplicate_key_reports_both_lines() -> None:
    """YAML silently keeps the last duplicate; we refuse it."""
    issue = only_error(texts(p_yaml=user_file("  alice:\n    nkey: x\n")))
    assert (issue.line, issue.path) == (6, "users.alice")
    assert "first defined on line 4" in issue.message


def test_non_mapping_document_is_an_error_with_line() -> None:
    """A list at the top level is a mistake, reported at line 1."""
    issue = only_error(texts(p_yaml="- version\n- 1\n"))
    assert issue.line == 1
    assert "must be a mapping" in issue.message


def test_empty_file_is_an_error() -> None:
    """A file with only comments has no version; it is reported, not skipped."""
    assert "empty" in only_error(texts(p_yaml="# nothing\n")).message


def test_missing_version_is_an_error() -> None:
    """The format is versioned; a file must say which version it is."""
    issue = only_error(texts(p_yaml="roles: {}\n"))
    assert (issue.path, issue.message) == ("version", "required key is missing")


def test_unknown_key_is_an_error_at_its_line() -> None:
    """A typo such as `pubish` must not silently grant nothing or everything."""
    issue = only_error(texts(p_yaml=user_file("    pubish: {allow: [a]}\n")))
    assert (issue.line, issue.path, issue.message) == (6, "users.alice.pubish", "unknown key")


def test_unknown_role_reference_is_an_error() -> None:
    """A misspelt role would otherwise silently drop grants."""
    issue = only_error(texts(p_yaml=user_file("    roles: [ghost]\n")))
    assert (issue.line, issue.path) == (6, "users.alice.roles[0]")
    assert "unknown role 'ghost'" in issue.message


def test_unknown_template_variable_is_an_error() -> None:
    """Only the documented variables exist; a typo must not render as literal text."""
    body = "    publish:\n      allow: ['x.{{user.nmae}}']\n"
    issue = only_error(texts(p_yaml=user_file(body)))
    assert (issue.line, issue.path) == (7, "users.alice.publish.allow[0]")
    assert "unknown template variable {{user.nmae}}" in issue.message


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("a..b", "empty token"),
        ("a.>.b", "'>' must be the last token"),
        ("a b", "cannot contain whitespace"),
        ("a.b*", "wildcards must be whole tokens"),
        (".a", "empty token"),
    ],
)
def test_invalid_publish_subject_is_an_error(subject: str, reason: str) -> None:
    """A subject nats-server would reject or misread is caught at load time."""
    body = f"    publish:\n      allow: ['{subject}']\n"
    issue = only_error(texts(p_yaml=user_file(body)))
    assert issue.line == 7
    assert reason in issue.message


def test_subscribe_entry_may_carry_a_queue_group() -> None:
    """`subject queue` is the NATS form of a queue permission."""
    body = "    subscribe:\n      allow: ['jobs.> workers']\n"
    policy = compile_texts(texts(p_yaml=user_file(body)))
    assert policy.users["alice"].rules.sub_allow == ("jobs.> workers",)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("src", "['10.0.0.1/8']", "host bits set; did you mean 10.0.0.0/8"),
        ("src", "['not-an-ip']", "not an IP network"),
        ("times", "[{start: '9:00', end: '10:00:00'}]", "HH:MM:SS"),
        ("times", "[{start: '10:00:00', end: '10:00:00'}]", "window is empty"),
        ("connection_types", "[TELNET]", "STANDARD"),
        ("max_expiry", "'10 minutes'", "expected a duration"),
        ("max_expiry", "600", "expected a duration"),
    ],
)
def test_invalid_field_value_is_an_error(field: str, value: str, reason: str) -> None:
    """Each value type gives a precise message at the value's line."""
    issue = only_error(texts(p_yaml=user_file(f"    {field}: {value}\n")))
    assert issue.line == 6
    assert issue.path.startswith(f"users.alice.{field}")
    assert reason in issue.message


def test_unknown_time_zone_is_an_error() -> None:
    """A zone the server cannot load would make every login fail at connect."""
    body = "    times: [{start: '09:00:00', end: '17:00:00'}]\n    times_location: Mars/Base\n"
    issue = only_error(texts(p_yaml=user_file(body)))
    assert (issue.line, issue.path) == (7, "users.alice.times_location")


def test_unquoted_clock_time_is_read_as_text() -> None:
    """YAML 1.1 reads 17:00:00 as the number 61200; our reader keeps it a time."""
    body = "    times: [{start: 09:00:00, end: 17:00:00}]\n    times_location: UTC\n"
    policy = compile_texts(texts(p_yaml=user_file(body)))
    assert policy.users["alice"].rules.times[0].text == (("09:00:00", "17:00:00"),)


def test_plaintext_password_is_an_error_without_echoing_it() -> None:
    """A plaintext password must never load, and never appear in an error message."""
    text = HEADER + "users:\n  bob:\n    password: hunter2-secret\n"
    issue = only_error(texts(p_yaml=text))
    assert (issue.line, issue.path) == (5, "users.bob.password")
    assert "plaintext passwords are not allowed" in issue.message
    assert "hunter2" not in str(issue)


def test_seed_in_place_of_nkey_is_an_error_without_echoing_it() -> None:
    """Pasting a seed (a secret) is called out, and the seed is not repeated."""
    seed = "SUAL3SQCIFJSBPC2FL7GVBYLZONJFSY55NZVYCHLBEUXTTOOIAFYTPLUAM"
    issue = only_error(texts(p_yaml=HEADER + f"users:\n  s:\n    nkey: {seed}\n"))
    assert "SEED" in issue.message
    assert seed not in str(issue)


def test_user_with_both_password_and_nkey_is_an_error() -> None:
    """One credential per user keeps the login path unambiguous."""
    body = "    nkey: UC3XAWTRAG7QVY42WNIF4HTXKPCDUD2ENMXBF5XAWHC5VM55W6NK5X7D\n"
    issue = only_error(texts(p_yaml=user_file(body)))
    assert (issue.path, issue.line) == ("users.alice", 4)
    assert "exactly one of password or nkey" in issue.message


def test_user_without_any_account_is_an_error() -> None:
    """Without a target account the service could not place the user anywhere."""
    text = "version: 1\nusers:\n  alice:\n    password: '" + ALICE_HASH + "'\n"
    issue = only_error(texts(p_yaml=text))
    assert (issue.path, issue.line) == ("users.alice", 3)
    assert "no account" in issue.message


def test_roles_naming_different_accounts_is_an_error() -> None:
    """A user cannot be in two accounts; the policy must say which."""
    text = user_file("    roles: [a, b]\n") + "roles:\n  a: {account: X}\n  b: {account: Y}\n"
    issue = only_error(texts(p_yaml=text))
    assert (issue.path, issue.line) == ("users.alice.roles", 6)
    assert "a (X), b (Y)" in issue.message


def test_disjoint_src_of_user_and_role_is_an_error() -> None:
    """Conditions narrow; when nothing is left, no login could ever succeed."""
    text = (
        user_file("    src: [10.0.0.0/8]\n    roles: [r]\n")
        + "roles:\n  r: {src: [192.168.0.0/16]}\n"
    )
    assert "do not overlap" in only_error(texts(p_yaml=text)).message


def test_files_merge_into_one_policy() -> None:
    """Roles in one file serve users in another, as ConfigMaps are usually split."""
    files = texts(
        roles_yaml="version: 1\nroles:\n  r: {publish: {allow: [a.>]}}\n",
        users_yml=user_file("    roles: [r]\n"),
    )
    assert compile_texts(files).users["alice"].rules.pub_allow == ("a.>",)


def test_duplicate_user_across_files_names_both_places() -> None:
    """Two teams defining the same user must be told, not have one silently win."""
    other = "version: 1\nusers:\n  alice:\n    password: '" + ALICE_HASH + "'\n"
    issue = only_error(texts(a_yaml=user_file(""), b_yaml=other))
    assert issue.file == "b.yaml"
    assert (issue.line, issue.path) == (3, "users.alice")
    assert "also defined in a.yaml:4" in issue.message


def test_defaults_in_two_files_is_an_error() -> None:
    """Defaults are global; two sources would make the result depend on file order."""
    assert "defaults are already set" in only_error(texts(a_yaml=HEADER, b_yaml=HEADER)).message


def test_every_error_of_every_file_is_reported() -> None:
    """One run of `policy check` shows all problems, not the first one."""
    files = texts(a_yaml="version: 2\n", b_yaml="- x\n", c_yaml=user_file("    x: 1\n"))
    assert [issue.file for issue in errors_of(files)] == ["a.yaml", "b.yaml", "c.yaml"]


def test_dot_files_and_other_suffixes_are_skipped(tmp_path: Path) -> None:
    """Kubernetes mounts carry `..data` links; editors leave backups."""
    write(tmp_path, p_yaml=user_file(""))
    (tmp_path / "..2024_01_01").mkdir()
    (tmp_path / ".hidden.yaml").write_text("garbage: [", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("garbage: [", encoding="utf-8")
    assert load_policy(tmp_path).password_user("alice") is not None


def test_symlinked_files_are_followed(tmp_path: Path) -> None:
    """A ConfigMap mount exposes each file as a symlink into `..data`."""
    data = tmp_path / "..data"
    data.mkdir()
    write(data, p_yaml=user_file(""))
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "p.yaml").symlink_to(data / "p.yaml")
    assert load_policy(mount).password_user("alice") is not None


def test_digest_changes_with_content_only(tmp_path: Path) -> None:
    """The watcher skips reloads when the digest is unchanged."""
    write(tmp_path, p_yaml=user_file(""))
    first, again = load_policy(tmp_path).digest, load_policy(tmp_path).digest
    write(tmp_path, p_yaml=user_file("    tags: [x]\n"))
    assert first == again != load_policy(tmp_path).digest


def test_bcrypt_hash_loads_with_a_legacy_warning() -> None:
    """Teams migrating from nats-server configs bring bcrypt; it works but is flagged."""
    bcrypt_hash = "$2b$04$ZIO36hGHTCY0kqGRKEE7S./EuP4yFj5COBWBzGG4IjxpmdSMFnGM."
    result = check_texts(texts(p_yaml=HEADER + f"users:\n  b:\n    password: '{bcrypt_hash}'\n"))
    assert result.ok
    assert [(w.path, "legacy bcrypt" in w.message) for w in result.warnings] == [
        ("users.b.password", True)
    ]


def test_weak_argon2_hash_is_a_warning() -> None:
    """Hashes below the OWASP parameters are cheaper to crack offline."""
    weak = "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$0pH3mP7rHOZyCzrMQ3pbAfdkjvdCeK3aI6ZDkxyEGqU"
    result = check_texts(texts(p_yaml=HEADER + f"users:\n  b:\n    password: '{weak}'\n"))
    assert any("weaker than OWASP" in w.message for w in result.warnings)


def test_unused_role_is_a_warning() -> None:
    """A role nobody holds is usually a leftover or a typo elsewhere."""
    result = check_texts(texts(p_yaml=user_file("") + "roles:\n  lonely: {}\n"))
    assert [w.message for w in result.warnings] == [
        "role 'lonely' is not used by any user or group"
    ]


def test_full_publish_wildcard_is_a_warning() -> None:
    """Publishing to `>` includes system subjects in the account; worth a second look."""
    result = check_texts(texts(p_yaml=user_file("    publish: {allow: ['>']}\n")))
    assert [w.path for w in result.warnings] == ["users.alice.publish.allow[0]"]


def test_compiling_touches_no_file() -> None:
    """The compiler takes texts as plain values: a name that is no file compiles the same."""
    policy = compile_texts({"/nowhere/p.yaml": user_file("")}, source="configmap policy")
    assert policy.password_user("alice") is not None
    assert policy.source == "configmap policy"


def test_digest_is_the_same_for_texts_and_their_files(tmp_path: Path) -> None:
    """The digest covers base names and contents: the directory read and the texts agree."""
    files = texts(p_yaml=user_file(""))
    write(tmp_path, p_yaml=user_file(""))
    assert compile_texts(files).digest == load_policy(tmp_path).digest


def test_unreadable_file_is_reported_and_nothing_loads() -> None:
    """A file that could not be read is an error of its own; the others are still checked."""
    result = check_texts(texts(p_yaml=user_file("")), unreadable={"q.yaml": "cannot read: x"})
    assert [(issue.file, issue.message) for issue in result.errors] == [
        ("q.yaml", "cannot read: x")
    ]
    assert result.snapshot is None
