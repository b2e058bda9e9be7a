"""Exit codes of every command: 0 ok, 1 a check failed or a runtime failure, 2 usage,
78 configuration that cannot work (the README's Commands section promises these)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from callout.cli import main
from tests.unit.policy.helpers import ALICE_HASH, ALICE_PASSWORD, HEADER, write

_POLICY = HEADER + f'users:\n  alice: {{password: "{ALICE_HASH}"}}\n'


def _code(argv: list[str]) -> int:
    """What the `callout` executable exits with (argparse exits 2 by SystemExit)."""
    try:
        return main(argv)
    except SystemExit as done:
        return int(done.code or 0)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    directory = tmp_path / "p"
    directory.mkdir()
    return write(directory, p_yaml=_POLICY)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["serve"],
        ["dev", "--port", "many"],
        ["policy"],
        ["policy", "check"],
        ["policy", "explain", "p"],
        ["policy", "test", "p"],
        ["policy", "diff", "a"],
        ["keys"],
        ["token", "new"],
        ["token", "pepper"],
        ["bench", "--scenario", "nonsense"],
        ["nats-config", "--config", "a", "--issuer-seed-file", "b"],
        ["nosuchcommand"],
    ],
    ids=lambda argv: " ".join(argv) or "nothing",
)
def test_a_command_line_that_cannot_parse_exits_2(argv: list[str]) -> None:
    """Scripts tell a mistyped call (2) from a failed check (1) and a bad config (78)."""
    assert _code(argv) == 2


def test_nats_config_without_a_key_source_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It used to exit 78 as if a configuration were broken; nothing was configured at all."""
    assert _code(["nats-config"]) == 2
    assert "needs --config FILE or --issuer-seed-file FILE" in capsys.readouterr().err


def test_nats_config_operator_without_its_inputs_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--operator alone has nothing to print from."""
    assert _code(["nats-config", "--operator"]) == 2
    assert "--operator needs --config" in capsys.readouterr().err


def test_keys_generate_with_nothing_to_generate_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to do nothing and exit 0, which looked like success."""
    assert _code(["keys", "generate", "--dir", str(tmp_path), "--no-issuer", "--no-xkey"]) == 2
    assert "leave nothing to generate" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_keys_generate_refusing_to_overwrite_is_a_configuration_error(tmp_path: Path) -> None:
    """Existing seeds are never replaced: 0 the first time, 78 the second."""
    assert _code(["keys", "generate", "--dir", str(tmp_path)]) == 0
    assert _code(["keys", "generate", "--dir", str(tmp_path)]) == 78


@pytest.mark.parametrize(
    "argv",
    [
        ["policy", "schema", "--output", "{tmp}/missing/schema.json"],
        ["keys", "generate", "--dir", "{tmp}/a-file/keys"],
    ],
    ids=["schema-output", "keys-dir"],
)
def test_a_path_that_cannot_be_written_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """A runtime failure on a file the command line names: the path and the reason, no
    traceback (it used to be an uncaught FileNotFoundError)."""
    (tmp_path / "a-file").write_text("not a directory")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert _code(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"callout {argv[0]}: {tmp_path}/" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("keys: {issuer_seed_file: /nonexistent}\naccounts: [APP]\n", 78),
        ("[", 78),
        ("nats: {user: caf\xe9}\n", 78),
        ("keys: {issuer_seed_file: /k}\naccounts: [APP]\nnats: {servers: [nats//h:4222]}\n", 78),
    ],
    ids=["missing-seed", "bad-yaml", "not-utf8", "malformed-url"],
)
def test_serve_and_nats_config_with_a_broken_config_exit_78(
    tmp_path: Path, text: str, expected: int
) -> None:
    """Configuration that cannot work: EX_CONFIG, before any network I/O."""
    config = tmp_path / "callout.yaml"
    config.write_bytes(text.encode("latin-1"))
    assert _code(["serve", "--config", str(config)]) == expected
    assert _code(["nats-config", "--config", str(config)]) == expected


@pytest.mark.parametrize("name", [".", "missing.yaml"], ids=["a-directory", "missing"])
def test_serve_with_an_unreadable_settings_file_exits_78(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The settings file cannot be read at all: EX_CONFIG with the path and the reason."""
    config = tmp_path / name
    assert _code(["serve", "--config", str(config)]) == 78
    assert f"{config}: cannot read" in capsys.readouterr().err


def test_policy_explain_exit_code_is_1_on_deny_and_0_on_allow(
    policy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like `policy diff --exit-code`: scripts and CI gate on a decision."""
    argv = ["policy", "explain", str(policy), "--user", "alice", "--exit-code"]
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong\n"))
    assert _code(argv) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{ALICE_PASSWORD}\n"))
    assert _code(argv) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong\n"))
    assert _code(argv[:-1]) == 0  # without --exit-code a DENY is an answer, not a failure


def test_policy_check_and_diff_exit_1_on_findings(policy: Path, tmp_path: Path) -> None:
    """A failed check is 1, not a usage or configuration error."""
    assert _code(["policy", "check", str(policy)]) == 0
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "p.yaml").write_text("version: 1\nusers: [\n", encoding="utf-8")
    assert _code(["policy", "check", str(broken)]) == 1
    assert _code(["policy", "diff", str(policy), str(policy), "--exit-code"]) == 0
    (tmp_path / "q").mkdir()
    other = write(tmp_path / "q", p_yaml=HEADER + "users: {}\n")
    assert _code(["policy", "diff", str(policy), str(other), "--exit-code"]) == 1
