"""`policy test` cases with a client certificate, a connection type and an MQTT client id: the
example of policies/README.md "Test a policy" runs as written against the README's mTLS device
and MQTT sensor examples; certificates are checked at the case's time."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from callout.credentials.passwords import hash_password
from tests.certificates import DAY, Authority, name
from tests.policycli import policy_cli

POLICIES_README = Path(__file__).resolve().parents[3] / "policies" / "README.md"
_ELIDED_HASH = "$argon2id$v=19$m=19456,t=2,p=1$..."
_SENSOR_PASSWORD = "dev-7-test-only"  # the password the README's test file uses


def _section(start: str, end: str) -> str:
    text = POLICIES_README.read_text()
    return text[text.index(start) : text.index(end, text.index(start))]


def _yaml_blocks(section: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)


def _readme_test_file() -> tuple[str, str]:
    """The test file and the command of "Test a policy" for the device and sensor examples."""
    section = _section("Protocol-aware rules and certificates are tested", "## Review a change")
    (tests,) = _yaml_blocks(section)
    (command,) = re.findall(r"```console\n\$ (.*?)\n```", section, re.DOTALL)
    return tests, command


@pytest.fixture
def ca() -> Authority:
    return Authority.root("Devices Root")


@pytest.fixture
def workspace(tmp_path: Path, ca: Authority, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The README's files in a working directory: ``policies/`` (the mTLS device and the MQTT
    sensor examples), ``callout.yaml`` (the device example's settings plus a static backend,
    with this test's CA) and ``tests/certs/t-17.pem`` (a device certificate valid today)."""
    device_section = _section("#### Worked example: an mTLS device", "### `tokens`")
    settings_block, device_policy = _yaml_blocks(device_section)[:2]
    mqtt_section = _section("## Protocol-aware rules", "**Leafnodes.**")
    (sensor_policy,) = _yaml_blocks(mqtt_section)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "devices.yaml").write_text(device_policy)
    password_hash = hash_password(_SENSOR_PASSWORD)
    (policies / "sensors.yaml").write_text(sensor_policy.replace(_ELIDED_HASH, password_hash))
    settings: dict[str, Any] = yaml.safe_load(settings_block)
    (tmp_path / "ca.pem").write_text(ca.pem)
    settings["backends"][0]["ca_files"] = [str(tmp_path / "ca.pem")]
    settings["backends"].append({"type": "static"})
    settings |= {"keys": {"issuer_seed_file": str(tmp_path / "unused.nk")}, "accounts": ["APP"]}
    (tmp_path / "callout.yaml").write_text(yaml.safe_dump(settings))
    certs = tmp_path / "tests" / "certs"
    certs.mkdir(parents=True)
    now = datetime.datetime.now(datetime.UTC)
    device = ca.issue(
        name(CN="t-17", OU="sensors"),
        dns=["t-17.devices.example.org"],
        not_before=now - DAY,
        not_after=now + DAY,
    )
    device.write(certs, "t-17")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_example_of_protocol_and_certificate_cases_passes(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each case of the README's test file holds, run by the command the README shows."""
    tests, command = _readme_test_file()
    (workspace / "tests" / "devices.yaml").write_text(tests)
    program, *argv = command.split()
    assert program == "callout"
    assert policy_cli(*argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "policy tests: 4 passed, 0 failed"


def _case(login: dict[str, Any], expect: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {"version": 1, "tests": [{"name": "c", "login": login, "expect": expect}]}
    )


@pytest.mark.parametrize(
    ("login", "expect"),
    [
        ({"cert_file": "certs/t-17.pem"}, {"decision": "deny"}),
        (
            {"user": "dev-7", "password": _SENSOR_PASSWORD, "connection_type": "MQTT"},
            {"decision": "allow"},
        ),
        (
            {
                "user": "dev-7",
                "password": _SENSOR_PASSWORD,
                "connection_type": "MQTT",
                "mqtt_client_id": "dev-8",
            },
            {"decision": "allow"},
        ),
    ],
    ids=["certificate-allowed", "mqtt-without-id", "mqtt-other-id"],
)
def test_a_wrong_expectation_about_a_certificate_or_mqtt_login_fails(
    workspace: Path,
    capsys: pytest.CaptureFixture[str],
    login: dict[str, Any],
    expect: dict[str, Any],
) -> None:
    """The fields reach the decision: a case expecting the opposite outcome fails."""
    (workspace / "tests" / "case.yaml").write_text(_case(login, expect))
    assert (
        policy_cli("policy", "test", "policies", "tests/case.yaml", "--config", "callout.yaml") == 1
    )
    assert capsys.readouterr().out.splitlines()[-1] == "policy tests: 0 passed, 1 failed"


def test_a_certificate_is_checked_at_the_cases_time(
    workspace: Path, ca: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    """A certificate that expired last month is valid at a time inside its validity."""
    last_month = datetime.datetime.now(datetime.UTC) - 30 * DAY
    old = ca.issue(
        name(CN="t-17", OU="sensors"),
        dns=["t-17.devices.example.org"],
        not_before=last_month - DAY,
        not_after=last_month + DAY,
    )
    old.write(workspace / "tests" / "certs", "old")
    cases = {
        "version": 1,
        "tests": [
            {
                "name": "today",
                "login": {"cert_file": "certs/old.pem"},
                "expect": {"decision": "deny", "reason": "credential_expired"},
            },
            {
                "name": "a month ago",
                "login": {"cert_file": "certs/old.pem", "at": last_month.isoformat()},
                "expect": {"decision": "allow", "account": "APP"},
            },
        ],
    }
    (workspace / "tests" / "old.yaml").write_text(yaml.safe_dump(cases))
    assert (
        policy_cli("policy", "test", "policies", "tests/old.yaml", "--config", "callout.yaml") == 0
    )
    assert capsys.readouterr().out.splitlines()[-1] == "policy tests: 2 passed, 0 failed"


@pytest.mark.parametrize(
    ("login", "message"),
    [
        ({"cert_file": "certs/missing.pem"}, "cannot read the certificate file"),
        ({"cert_file": "../callout.yaml"}, "not a PEM certificate chain"),
        (
            {"user": "dev-7", "password": "x", "mqtt_client_id": "dev-7"},
            "mqtt_client_id needs connection_type MQTT or MQTT_WS",
        ),
    ],
    ids=["missing-cert-file", "not-pem", "mqtt-id-without-mqtt"],
)
def test_a_mistake_in_a_login_is_reported_with_file_and_line(
    workspace: Path, capsys: pytest.CaptureFixture[str], login: dict[str, Any], message: str
) -> None:
    """A certificate that cannot be read or an MQTT id on a plain client is a test-file
    mistake (file:line, exit 1), never a case that passes by not running; file contents are
    never printed."""
    (workspace / "tests" / "bad.yaml").write_text(_case(login, {"decision": "deny"}))
    assert (
        policy_cli("policy", "test", "policies", "tests/bad.yaml", "--config", "callout.yaml") == 1
    )
    out = capsys.readouterr().out
    assert "tests/bad.yaml:" in out
    assert message in out
    assert "issuer_seed_file" not in out
