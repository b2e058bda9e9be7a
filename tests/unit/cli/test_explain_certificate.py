"""`policy explain --cert-file`: the worked mTLS example of policies/README.md, explained with
the device's certificate through the `cert` backend of the service's settings."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.certificates import DAY, Authority, name
from tests.policycli import policy_cli

POLICIES_README = Path(__file__).resolve().parents[3] / "policies" / "README.md"


def _worked_example() -> tuple[dict[str, Any], str]:
    """The settings and the policy the README's "an mTLS device" section shows."""
    section = POLICIES_README.read_text().split("#### Worked example: an mTLS device", 1)[1]
    settings, policy = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)[:2]
    return yaml.safe_load(settings), policy


@pytest.fixture
def ca() -> Authority:
    return Authority.root("Devices Root")


@pytest.fixture
def setup(tmp_path: Path, ca: Authority) -> tuple[Path, Path]:
    """(policy directory, settings file) of the worked example, with this test's CA."""
    settings, policy = _worked_example()
    (tmp_path / "ca.pem").write_text(ca.pem)
    settings["backends"][0]["ca_files"] = [str(tmp_path / "ca.pem")]
    settings |= {"keys": {"issuer_seed_file": str(tmp_path / "unused.nk")}, "accounts": ["APP"]}
    config = tmp_path / "callout.yaml"
    config.write_text(yaml.safe_dump(settings))
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "devices.yaml").write_text(policy)
    return policies, config


def _today() -> dict[str, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return {"not_before": now - DAY, "not_after": now + DAY}


def test_a_device_certificate_is_explained_as_the_readme_says(
    setup: tuple[Path, Path], ca: Authority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SAN -> user t-17, OU -> group ou:sensors -> role device, in APP."""
    policies, config = setup
    device = ca.issue(name(CN="t-17", OU="sensors"), dns=["t-17.devices.example.org"], **_today())
    cert, _ = device.write(tmp_path, "t-17")
    argv = ["--cert-file", str(cert), "--config", str(config), "--json"]
    assert policy_cli("policy", "explain", str(policies), *argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["decision"], result["account"]) == ("allow", "APP")
    assert result["claims"]["name"] == "t-17"
    assert result["claims"]["nats"]["pub"]["allow"] == ["telemetry.t-17.>"]
    assert result["claims"]["nats"]["sub"]["allow"] == ["commands.t-17.>"]
    assert result["claims"]["exp"] <= int(device.certificate.not_valid_after_utc.timestamp())


def test_the_identity_form_of_the_readme_gives_the_same_grant(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    policies, _ = setup
    argv = ["--identity", "t-17", "--backend", "cert", "--group", "ou:sensors", "--json"]
    assert policy_cli("policy", "explain", str(policies), *argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["claims"]["nats"]["pub"]["allow"] == ["telemetry.t-17.>"]


def test_a_certificate_of_another_ca_is_explained_as_untrusted(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies, config = setup
    other = Authority.root("Other").issue(
        name(OU="sensors"), dns=["t-17.devices.example.org"], **_today()
    )
    cert, _ = other.write(tmp_path, "other")
    argv = ["--cert-file", str(cert), "--config", str(config), "--exit-code"]
    assert policy_cli("policy", "explain", str(policies), *argv) == 1
    assert capsys.readouterr().out.startswith(
        "decision: DENY (untrusted_issuer: not issued by a trusted CA)"
    )


@pytest.mark.parametrize("content", [None, "no certificate here\n"], ids=["missing", "no-pem"])
def test_an_unusable_certificate_file_is_a_usage_error(
    setup: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
) -> None:
    """Exit 2 with the file named; its contents are never printed."""
    policies, config = setup
    path = tmp_path / "device.pem"
    if content is not None:
        path.write_text(content)
    argv = ["--cert-file", str(path), "--config", str(config)]
    assert policy_cli("policy", "explain", str(policies), *argv) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert "no certificate here" not in err


def test_at_moves_the_certificates_validity_check_to_that_time(
    setup: tuple[Path, Path], ca: Authority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A certificate expired now is explained as valid at an --at inside its validity, and
    one valid now as expired at an --at after it: the review sees the login it asked about."""
    policies, config = setup
    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue(
        name(CN="t-17", OU="sensors"),
        dns=["t-17.devices.example.org"],
        not_before=now - 20 * DAY,
        not_after=now - 10 * DAY,
    )
    cert, _ = expired.write(tmp_path, "expired")
    argv = ["--cert-file", str(cert), "--config", str(config), "--json"]
    assert policy_cli("policy", "explain", str(policies), *argv) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "credential_expired"
    then = (now - 15 * DAY).isoformat()
    assert policy_cli("policy", "explain", str(policies), *argv, "--at", then) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["decision"], result["account"]) == ("allow", "APP")
    current, _ = ca.issue(
        name(CN="t-17", OU="sensors"), dns=["t-17.devices.example.org"], **_today()
    ).write(tmp_path, "current")
    later = (now + 2 * DAY).isoformat()
    argv = ["--cert-file", str(current), "--config", str(config), "--json", "--at", later]
    assert policy_cli("policy", "explain", str(policies), *argv) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "credential_expired"
