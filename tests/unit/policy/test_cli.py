"""`policy check`, `policy schema` and `hash-password` as a security team runs them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from callout.credentials.passwords import hash_scheme
from callout.policy.schema import policy_schema_text
from tests.policycli import policy_cli
from tests.unit.policy.helpers import ALICE_HASH, HEADER, write

BCRYPT = "$2b$04$ZIO36hGHTCY0kqGRKEE7S./EuP4yFj5COBWBzGG4IjxpmdSMFnGM."


def test_check_prints_file_line_path_message_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI and pre-commit hooks rely on the exit code and the file:line shape."""
    write(tmp_path, p_yaml=HEADER + "roles:\n  r: {publish: {allow: ['a..b']}}\n")
    assert policy_cli("policy", "check", str(tmp_path)) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'p.yaml'}:4: roles.r.publish.allow[0]: invalid subject")


def test_check_passes_with_warnings_unless_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warnings inform; `--strict` lets a team make them blocking."""
    write(tmp_path, p_yaml=HEADER + f"users:\n  b:\n    password: '{BCRYPT}'\n")
    assert policy_cli("policy", "check", str(tmp_path)) == 0
    assert "warning: legacy bcrypt" in capsys.readouterr().out
    assert policy_cli("policy", "check", "--strict", str(tmp_path)) == 1


def test_check_of_clean_policy_succeeds(tmp_path: Path) -> None:
    """A clean policy exits 0."""
    write(tmp_path, p_yaml=HEADER + f"users:\n  a:\n    password: '{ALICE_HASH}'\n")
    assert policy_cli("policy", "check", str(tmp_path)) == 0


def test_schema_prints_or_writes_the_generated_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same text on stdout and in the file keeps the drift test simple."""
    assert policy_cli("policy", "schema") == 0
    assert capsys.readouterr().out == policy_schema_text()
    assert policy_cli("policy", "schema", "--output", str(tmp_path / "s.json")) == 0
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == policy_schema_text()


def test_hash_password_reads_stdin_when_piped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scripts pipe the password in; it never appears in argv or the output."""
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert policy_cli("hash-password") == 0
    out = capsys.readouterr().out.strip()
    assert hash_scheme(out) == "argon2id"
    assert "s3cret" not in out


def test_hash_password_refuses_an_empty_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty password would hash fine and then never be usable."""
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert policy_cli("hash-password") == 1


def test_hash_password_prompts_twice_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo at an interactive prompt must not produce a hash nobody can match."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["one", "two"])
    monkeypatch.setattr("sys.stdin", Tty())
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert policy_cli("hash-password") == 1
    assert "differ" in capsys.readouterr().err
