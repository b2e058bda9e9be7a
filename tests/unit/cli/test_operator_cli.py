"""`callout nats-config --operator` and `callout serve` in operator mode, as an operator runs
them: the nsc commands for the configured keys, and refusals with documented messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from callout.cli import EXIT_CONFIG, main
from callout.devserver.operator_mode import OperatorModeSetup
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.secretfiles import write_secret


def _serve(config: Path) -> subprocess.CompletedProcess[str]:
    """`callout serve` in its own process: it configures logging for the whole process."""
    return subprocess.run(
        [sys.executable, "-m", "callout", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, Path) else value


def _config(tmp_path: Path, setup: OperatorModeSetup, **changes: Any) -> Path:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "p.yaml").write_text("version: 1\n")
    values = setup.settings_values(policies)
    for name, change in changes.items():
        values["operator"]["accounts"][name].update(change)
    path = tmp_path / "callout.yaml"
    path.write_text(yaml.safe_dump(_plain(values)))
    return path


def test_nats_config_prints_the_nsc_commands_for_the_configured_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Auth user from the creds file, allowed accounts, curve key, signing keys, push."""
    setup = OperatorModeSetup(
        tmp_path / "keys",
        4222,
        target_accounts=("APP", "OPS"),
        scoped_accounts=("SCOPED",),
        signing_keys=True,
        encrypted=True,
    ).write()
    assert main(["nats-config", "--config", str(_config(tmp_path, setup))]) == 0
    out = capsys.readouterr().out
    assert "nsc edit authcallout --account AUTH \\" in out
    assert f"--auth-user {setup.service_user.public_key}" in out
    for name in ("APP", "OPS", "SCOPED"):
        assert f"--allowed-account '{setup.public_key(name)}'" in out
        key = setup.accounts[name].signer.public_key
        assert f"nsc edit account --name {name} --sk {key}" in out
    assert f"--curve {setup.xkey.public_key}" in out
    scoped = setup.accounts["SCOPED"].signer.public_key
    assert f"nsc edit signing-key --account SCOPED --sk {scoped}" in out
    assert "nsc push -A" in out
    assert "include resolver.conf" in out
    assert setup.service_user.seed not in out


def test_nats_config_operator_works_from_flags_alone(capsys: pytest.CaptureFixture[str]) -> None:
    """Before any settings exist: the keys you have, the commands to run."""
    user = KeyPair.generate(KeyRole.USER).public_key
    argv = ["nats-config", "--operator", "--account", "CALLOUT", "--auth-user", user]
    assert main([*argv, "--allowed-account", "*"]) == 0
    out = capsys.readouterr().out
    assert "nsc edit authcallout --account CALLOUT" in out
    assert "--allowed-account '*'" in out
    assert main(argv) == 2  # missing flags: a usage error
    assert "--allowed-account" in capsys.readouterr().err


def test_nats_config_operator_numbers_its_steps_without_gaps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without signing keys to list there is no step 2, so publishing is step 2, not 3."""
    user = KeyPair.generate(KeyRole.USER).public_key
    argv = ["nats-config", "--operator", "--auth-user", user, "--allowed-account", "*"]
    assert main(argv) == 0
    steps = [line.split(".")[0] for line in capsys.readouterr().out.splitlines()]
    numbered = [s.removeprefix("# ") for s in steps if s[2:].isdigit() and s.startswith("# ")]
    assert numbered == [str(n) for n in range(1, len(numbered) + 1)]
    assert len(numbered) == 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"signing_seed_file": "/nonexistent/app.nk"}, "operator.accounts.APP.signing_seed_file"),
        ("user-seed", "holds a user seed (SU...); it must be an account seed (SA...)"),
        ("stranger", "is neither the account key"),
    ],
    ids=["no-seed-file", "user-seed", "other-account"],
)
def test_serve_refuses_a_key_setup_that_cannot_work(
    tmp_path: Path, change: Any, expected: str
) -> None:
    """Exit 78 (EX_CONFIG) with the documented message, before touching the network."""
    setup = OperatorModeSetup(tmp_path / "keys", 4222).write()
    if change == "user-seed":
        write_secret(tmp_path / "u.nk", KeyPair.generate(KeyRole.USER).seed)
        change = {"signing_seed_file": tmp_path / "u.nk"}
    elif change == "stranger":
        write_secret(tmp_path / "s.nk", KeyPair.generate(KeyRole.ACCOUNT).seed)
        change = {"signing_seed_file": tmp_path / "s.nk"}
    result = _serve(_config(tmp_path, setup, APP=change))
    assert result.returncode == EXIT_CONFIG
    assert "callout: configuration error:" in result.stderr
    assert expected in result.stderr


def test_serve_refuses_a_bad_creds_file(tmp_path: Path) -> None:
    """The service's own login is checked before the first connect attempt."""
    setup = OperatorModeSetup(tmp_path / "keys", 4222).write()
    setup.service_creds_file.unlink()
    write_secret(setup.service_creds_file, KeyPair.generate(KeyRole.USER).seed)
    result = _serve(_config(tmp_path, setup))
    assert result.returncode == EXIT_CONFIG
    assert "NATS credentials file" in result.stderr
    assert "not a creds file" in result.stderr


def test_keys_generate_can_make_only_the_xkey(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In operator mode nsc owns the account keys; the service only needs its curve key."""
    assert main(["keys", "generate", "--dir", str(tmp_path), "--no-issuer"]) == 0
    assert [path.name for path in tmp_path.iterdir()] == ["xkey.nk"]
    assert (tmp_path / "xkey.nk").stat().st_mode & 0o777 == 0o600
    assert capsys.readouterr().out.split(": ")[1].startswith("X")
