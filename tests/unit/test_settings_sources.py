"""Where settings come from: one precedence, lists in variables, errors that name their source."""

from __future__ import annotations

from pathlib import Path

import pytest

from callout.errors import ConfigError
from callout.settings import load_settings

BASE = "keys:\n  issuer_seed_file: /k/i.nk\naccounts: [APP]\n"


def _file(tmp_path: Path, text: str = BASE) -> Path:
    path = tmp_path / "callout.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path | None = None, env: dict[str, str] | None = None, **values: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=env or {}, **values)
    return str(caught.value)


def test_explicit_arguments_beat_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    """`callout dev` and fixtures pass explicit values: a CALLOUT_* in the shell must not win."""
    path = _file(tmp_path, BASE + "log: {level: warning}\nnats: {name: from-file}\n")
    env = {"CALLOUT_LOG__LEVEL": "error", "CALLOUT_NATS__NAME": "from-env"}
    settings = load_settings(path, environ=env, log={"level": "debug"})
    assert settings.log.level == "debug"  # explicit > environment
    assert settings.nats.name == "from-env"  # environment > file
    assert load_settings(path, environ={}).nats.name == "from-file"


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit environ, CALLOUT_* variables of the process apply (containers)."""
    monkeypatch.setenv("CALLOUT_NATS__NAME", "from-process")
    settings = load_settings(None, keys={"issuer_seed_file": "/k"}, accounts=["APP"])
    assert settings.nats.name == "from-process"


def test_an_explicit_section_is_not_mixed_with_the_environment() -> None:
    """A section given in code replaces the variables of that section (no creds_file leaks in)."""
    env = {"CALLOUT_NATS__CREDS_FILE": "/run/auth.creds"}
    settings = load_settings(
        None,
        environ=env,
        nats={"user": "auth", "password_file": "/p"},
        keys={"issuer_seed_file": "/k"},
        accounts=["APP"],
    )
    assert settings.nats.creds_file is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nats://h:4222", ["nats://h:4222"]),
        ("nats://a:4222, nats://b:4222", ["nats://a:4222", "nats://b:4222"]),
        ('["nats://h:4222"]', ["nats://h:4222"]),
    ],
    ids=["one", "commas", "json"],
)
def test_lists_in_variables_take_commas_or_json(value: str, expected: list[str]) -> None:
    """CALLOUT_NATS__SERVERS=nats://h:4222 is what people write; JSON keeps working."""
    env = {"CALLOUT_NATS__SERVERS": value, "CALLOUT_ACCOUNTS": "APP,OPS"}
    settings = load_settings(None, environ=env, keys={"issuer_seed_file": "/k"})
    assert settings.nats.servers == expected
    assert settings.accounts == ["APP", "OPS"]


def test_a_typo_in_a_variable_name_is_a_variable_error(tmp_path: Path) -> None:
    """The message names the variable and the one that exists, not the YAML file."""
    message = _error(_file(tmp_path), env={"CALLOUT_NATS__SERVRS": "nats://h:4222"})
    assert "CALLOUT_NATS__SERVRS: unknown setting nats.servrs" in message
    assert "did you mean CALLOUT_NATS__SERVERS?" in message
    assert str(tmp_path) not in message


def test_a_typo_in_the_file_names_file_line_and_the_closest_key(tmp_path: Path) -> None:
    """file:line, the key path and the key that exists, without a pydantic traceback."""
    path = _file(tmp_path, BASE + "nats:\n  servers: [nats://h:4222]\n  pasword_file: /p\n")
    message = _error(path)
    assert f"{path}:6: unknown setting nats.pasword_file (did you mean nats.password_file?)" in (
        message
    )
    assert "pydantic" not in message
    assert "Extra inputs" not in message


def test_a_wrong_value_names_file_line_and_key_path(tmp_path: Path) -> None:
    """A wrong value in a nested section points at its line."""
    path = _file(tmp_path, BASE + "service:\n  max_concurrency: lots\n")
    message = _error(path)
    assert f"{path}:5: service.max_concurrency: Input should be a valid integer" in message


def test_a_wrong_value_in_a_variable_names_the_variable() -> None:
    """The variable, not the file, is the source to fix."""
    message = _error(
        env={"CALLOUT_SERVICE__MAX_CONCURRENCY": "lots"},
        keys={"issuer_seed_file": "/k"},
        accounts=["APP"],
    )
    assert "CALLOUT_SERVICE__MAX_CONCURRENCY: service.max_concurrency: Input should be" in message


def test_a_typo_in_a_backend_suggests_the_backends_key(tmp_path: Path) -> None:
    """Did-you-mean reaches into the tagged list of backends."""
    path = _file(tmp_path, BASE + "backends:\n  - type: static\n    acepts: [password]\n")
    message = _error(path)
    assert f"{path}:6: unknown setting backends.0.acepts" in message
    assert "did you mean backends.0.accepts?" in message


def test_mode_requirements_name_the_line_of_the_key(tmp_path: Path) -> None:
    """Whole-tree checks also point at the key's line when the file has it."""
    path = _file(tmp_path, "accounts: [APP]\nkeys: {}\noperator: null\nmode: operator\n")
    message = _error(path)
    assert f"{path}:1: accounts: config mode only" in message


def test_a_non_utf8_file_is_refused_without_its_contents(tmp_path: Path) -> None:
    """A binary or Latin-1 file is a configuration error (exit 78), and nothing of it is shown."""
    path = tmp_path / "callout.yaml"
    path.write_bytes(b"nats:\n  user: secr\xe9t-\xff\n")
    message = _error(path)
    assert f"{path}:2: not UTF-8 text (invalid byte at offset 18)" in message
    assert "secr" not in message


def test_an_unreadable_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A directory (or a file without read permission) fails with the reason, not a traceback."""
    message = _error(tmp_path)
    assert f"{tmp_path}: cannot read" in message


@pytest.mark.parametrize(
    "url", ["nats//h:4222", "h:4222", "nats://", "http://h:4222", "nats://h:port"]
)
def test_malformed_nats_urls_are_refused_at_start_up(url: str) -> None:
    """nats-py would retry a malformed URL forever; say what is wrong before any I/O."""
    message = _error(
        env={"CALLOUT_NATS__SERVERS": url}, keys={"issuer_seed_file": "/k"}, accounts=["APP"]
    )
    assert "CALLOUT_NATS__SERVERS: nats.servers" in message
    assert "nats://host:4222" in message


def test_credentials_in_a_malformed_url_are_not_repeated() -> None:
    """A URL with user:password@ is shown without them."""
    message = _error(
        nats={"servers": ["nats//auth:hunter2@h:4222"]},
        keys={"issuer_seed_file": "/k"},
        accounts=["APP"],
    )
    assert "hunter2" not in message


def test_a_missing_required_key_is_placed_in_the_file(tmp_path: Path) -> None:
    """Nobody set it, so the file is where it belongs: its name leads the line."""
    path = _file(tmp_path, "accounts: [APP]\n")
    message = _error(path)
    assert f"{path}: keys.issuer_seed_file: config mode needs" in message
