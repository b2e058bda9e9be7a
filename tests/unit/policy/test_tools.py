"""`policy explain`, `policy test` and `policy diff`, as a security team runs them."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from tests.policycli import policy_cli
from tests.unit.policy.helpers import ALICE_HASH, ALICE_PASSWORD, HEADER, write

REPO_POLICIES = Path(__file__).parents[3] / "policies"

_POLICY = (
    HEADER
    + """\
roles:
  app: {publish: {allow: ["app.>"]}, subscribe: {allow: ["app.>", "_INBOX.>"]}}
  private: {publish: {allow: ["user.{{user.name}}.>"]}}
  office: {src: [10.0.0.0/8]}
groups:
  devs: {roles: [app]}
users:
  alice:
    password: "HASH"
    roles: [app, private]
  carol:
    password: "HASH"
    roles: [app, office]
"""
).replace("HASH", ALICE_HASH)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    directory = tmp_path / "p"
    directory.mkdir()
    return write(directory, p_yaml=_POLICY)


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_explain_shows_the_decision_the_matched_entries_and_the_claims(
    policy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before merging, a reviewer sees exactly what a login would get and from where."""
    _stdin(monkeypatch, ALICE_PASSWORD + "\n")
    assert policy_cli("policy", "explain", str(policy), "--user", "alice", "--json") == 0
    out = capsys.readouterr().out
    result = json.loads(out)
    assert (result["decision"], result["account"]) == ("allow", "APP")
    assert [m["entry"] for m in result["matched"]] == ["user alice", "role app", "role private"]
    assert result["matched"][2]["where"] == f"{policy / 'p.yaml'}:5"
    assert result["matched"][2]["grants"] == ["publish allow user.{{user.name}}.>"]
    assert result["claims"]["nats"]["pub"]["allow"] == ["app.>", "user.alice.>"]
    assert result["claims"]["aud"] == "APP"
    assert ALICE_PASSWORD not in out


def test_explain_names_the_condition_that_failed(
    policy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "Why can't carol log in?" is answered without reading logs of a live server."""
    _stdin(monkeypatch, ALICE_PASSWORD)
    assert (
        policy_cli("policy", "explain", str(policy), "--user", "carol", "--host", "192.0.2.7") == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("decision: DENY (source_not_allowed)")
    assert "FAIL src: client 192.0.2.7 is outside 10.0.0.0/8" in out


def test_explain_an_identity_from_a_directory_group_without_credentials(
    policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Group mappings (LDAP/OIDC) can be explained without a directory."""
    argv = ["--identity", "dana", "--backend", "ldap", "--group", "devs", "--group", "x"]
    assert policy_cli("policy", "explain", str(policy), *argv) == 0
    out = capsys.readouterr().out
    assert "decision: ALLOW" in out
    assert "group devs" in out
    assert "role app" in out


def test_explain_signs_the_nonce_with_the_seed_file_like_a_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """nkey logins are explained end to end, signature verification included."""
    from callout.protocol.nkeys import KeyPair, KeyRole  # noqa: PLC0415

    key = KeyPair.generate(KeyRole.USER)
    policy = write(tmp_path, p_yaml=HEADER + f"users:\n  dev: {{nkey: {key.public_key}}}\n")
    seed = tmp_path / "dev.nk"
    seed.write_text(key.seed)
    seed.chmod(0o600)
    assert policy_cli("policy", "explain", str(policy), "--nkey-seed-file", str(seed)) == 0
    out = capsys.readouterr().out
    assert "decision: ALLOW" in out
    assert key.seed not in out


_TESTS = """\
version: 1
tests:
  - name: alice writes app subjects
    login: {user: alice, password: alice-secret}
    expect:
      decision: allow
      account: APP
      expiry: 1h
      publish: {allow: [app.x, user.alice.y], deny: [user.bob.y]}
  - name: carol from outside the office is refused
    login: {user: carol, password: alice-secret, host: 192.0.2.7}
    expect: {decision: deny, reason: source_not_allowed}
  - name: a developer group member
    identity: {principal: dana, backend: ldap, groups: [devs]}
    expect: {decision: allow, subscribe: {allow: ["_INBOX.x"]}}
"""


def test_policy_tests_pass_and_print_a_summary(
    policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI runs these on every policy change; green means the stated intent still holds."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "t.yaml").write_text(_TESTS)
    assert policy_cli("policy", "test", str(policy), str(tests)) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "policy tests: 3 passed, 0 failed"


def test_a_failing_policy_test_says_what_differs(
    policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A readable diff points the author at the rule, not at a stack trace."""
    broken = _TESTS.replace("account: APP", "account: OPS").replace(
        "deny: [user.bob.y]", "deny: [app.z]"
    )
    (tmp_path / "t.yaml").write_text(broken)
    assert policy_cli("policy", "test", str(policy), str(tmp_path / "t.yaml")) == 1
    out = capsys.readouterr().out
    assert f"FAIL {tmp_path / 't.yaml'}:3: alice writes app subjects" in out
    assert "account: expected 'OPS', got 'APP'" in out
    assert "publish 'app.z': expected denied, allowed by 'app.>'" in out
    assert out.splitlines()[-1] == "policy tests: 2 passed, 1 failed"


def test_a_mistake_in_a_test_file_is_reported_with_file_and_line(
    policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in a test must fail loudly, never pass as an empty test."""
    (tmp_path / "t.yaml").write_text(
        _TESTS.replace("expect: {decision: deny", "expct: {decision: deny")
    )
    assert policy_cli("policy", "test", str(policy), str(tmp_path / "t.yaml")) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 't.yaml'}:12: tests[1].expct: unknown key" in out


def test_the_shipped_example_tests_pass_against_the_example_policies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The examples are documentation; their tests keep them honest."""
    assert policy_cli("policy", "test", str(REPO_POLICIES), str(REPO_POLICIES / "tests")) == 0
    assert " 0 failed" in capsys.readouterr().out


def test_diff_lists_who_gains_and_loses_what(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reviewer sees the effect of a role edit on every identity holding the role."""
    old = tmp_path / "old"
    old.mkdir()
    write(old, p_yaml=_POLICY)
    new = tmp_path / "new"
    shutil.copytree(old, new)
    text = _POLICY.replace('allow: ["app.>", "_INBOX.>"]', 'allow: ["_INBOX.>"]')
    text = text.replace(
        'private: {publish: {allow: ["user.{{user.name}}.>"]}}',
        ('private: {publish: {allow: ["user.{{user.name}}.>"], deny: ["user.*.secret"]}}'),
    )
    text = text.replace(
        "  carol:\n",
        '  dave:\n    password: "HASH"\n    roles: [app]\n  carol:\n'.replace("HASH", ALICE_HASH),
    )
    (new / "p.yaml").write_text(text)
    assert policy_cli("policy", "diff", str(old), str(new), "--exit-code") == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["group devs", "  loses    subscribe app.> (allow removed)"]
    assert out[out.index("user alice") + 1] == "  loses    publish user.*.secret (deny added)"
    assert "  loses    subscribe app.> (allow removed)" in out
    assert "user dave" in out
    assert out[out.index("user dave") + 1].startswith("  added    account APP")
    assert policy_cli("policy", "diff", str(old), str(old), "--exit-code") == 0


def test_explain_at_a_past_time_still_runs_the_configured_backends(
    policy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With --config, a login at an --at long past is decided by the backends, not cut off
    by the service's per-request deadline (which follows the wall clock)."""
    config = tmp_path / "callout.yaml"
    config.write_text(
        "backends: [{type: static}]\n"
        f"keys: {{issuer_seed_file: {tmp_path / 'unused.nk'}}}\n"
        "accounts: [APP]\n"
    )
    _stdin(monkeypatch, ALICE_PASSWORD)
    argv = ["--user", "alice", "--config", str(config), "--at", "2020-01-15T09:00:00Z"]
    assert policy_cli("policy", "explain", str(policy), *argv, "--exit-code") == 0
    assert capsys.readouterr().out.startswith("decision: ALLOW")
