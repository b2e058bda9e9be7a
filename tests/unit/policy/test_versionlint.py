"""`policy check --server-version`: rules a given nats-server version would not hold, each
coded with its advisory and the release that fixes it."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.policycli import policy_cli as run
from tests.unit.policy.helpers import ALICE_HASH, HEADER, write

_POLICY = (
    HEADER
    + f"""\
roles:
  reader:
    subscribe:
      allow: ["orders.*.created", "_INBOX.>"]
      deny: ["*.secret.>"]
  mqtt:
    publish: {{allow: ["sensors.>"]}}
    connection_types: [MQTT]
    mqtt_client_id: ["{{{{user.name}}}}-*"]
users:
  alice: {{password: '{ALICE_HASH}', roles: [reader]}}
  dev: {{password: '{ALICE_HASH}', roles: [mqtt]}}
"""
)


def _warnings(out: str, code: str) -> list[str]:
    return [line for line in out.splitlines() if line.endswith(f"[{code}]")]


def test_an_unfixed_version_flags_each_construct_with_the_fixing_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reviewer learns which rule is at risk on that version and what to upgrade to."""
    write(tmp_path, p_yaml=_POLICY)
    assert run("policy", "check", "--server-version", "2.12.5", str(tmp_path)) == 0
    out = capsys.readouterr().out
    [queue] = _warnings(out, "queue-deny-bypass")
    assert "roles.reader.subscribe.deny[0]:" in queue
    assert "can be bypassed with a queue subscription on nats-server 2.12.5" in queue
    assert "fixed in 2.12.7" in queue
    [overlap] = _warnings(out, "overlapping-deny")
    assert "roles.reader.subscribe.deny[0]:" in overlap
    assert "'*.secret.>' overlaps allow 'orders.*.created'" in overlap
    [mqtt] = _warnings(out, "mqtt-acl-bypass")
    assert "roles.mqtt.connection_types:" in mqtt
    assert "fixed in 2.12.6" in mqtt
    assert run("policy", "check", "--strict", "--server-version", "2.12.5", str(tmp_path)) == 1


def test_a_version_between_fixes_flags_only_what_it_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, p_yaml=_POLICY)
    run("policy", "check", "--server-version", "2.12.6", str(tmp_path))
    out = capsys.readouterr().out
    assert _warnings(out, "queue-deny-bypass")
    assert not _warnings(out, "mqtt-acl-bypass")


def test_a_fixed_version_adds_no_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, p_yaml=_POLICY)
    assert run("policy", "check", "--strict", "--server-version", "2.14.0", str(tmp_path)) == 0
    out = capsys.readouterr().out
    for code in ("queue-deny-bypass", "overlapping-deny", "mqtt-acl-bypass"):
        assert not _warnings(out, code)


def test_without_server_version_nothing_version_specific_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, p_yaml=_POLICY)
    run("policy", "check", str(tmp_path))
    out = capsys.readouterr().out
    for code in ("queue-deny-bypass", "overlapping-deny", "mqtt-acl-bypass"):
        assert not _warnings(out, code)


def test_a_deny_that_overlaps_no_allow_wildcard_is_not_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the overlap the advisory is about: a deny wildcard beside literal allows is fine."""
    policy = HEADER + (
        "roles:\n  r:\n    publish: {allow: ['a.b', 'c.d'], deny: ['x.>']}\n"
        f"users:\n  u: {{password: '{ALICE_HASH}', roles: [r]}}\n"
    )
    write(tmp_path, p_yaml=policy)
    run("policy", "check", "--server-version", "2.12.5", str(tmp_path))
    assert not _warnings(capsys.readouterr().out, "overlapping-deny")


def test_an_overlap_across_two_roles_of_one_user_is_flagged_where_the_deny_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = HEADER + (
        "roles:\n  wide: {publish: {allow: ['app.*.events']}}\n"
        "  narrow: {publish: {deny: ['app.admin.>']}}\n"
        f"users:\n  u: {{password: '{ALICE_HASH}', roles: [wide, narrow]}}\n"
    )
    write(tmp_path, p_yaml=policy)
    run("policy", "check", "--server-version", "2.11.20", str(tmp_path))
    [overlap] = _warnings(capsys.readouterr().out, "overlapping-deny")
    assert "roles.narrow.publish.deny[0]:" in overlap
    assert "'app.admin.>' overlaps allow 'app.*.events'" in overlap
    assert "fixed in 2.12.7" in overlap


def test_an_unreadable_version_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, p_yaml=_POLICY)
    assert run("policy", "check", "--server-version", "latest", str(tmp_path)) == 2
    assert "is not a version like 2.12.7" in capsys.readouterr().err


def test_with_the_settings_an_xkey_on_a_server_before_2_10_4_is_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """xkey-broken is about the service's settings, so it needs --config."""
    policies = tmp_path / "policies"
    policies.mkdir()
    write(policies, p_yaml=_POLICY)
    settings = tmp_path / "callout.yaml"
    settings.write_text(
        "keys: {issuer_seed_file: /keys/issuer.nk, xkey_seed_file: /keys/xkey.nk}\n"
        "accounts: [APP]\n",
        encoding="utf-8",
    )
    argv = ("policy", "check", "--config", str(settings), str(policies))
    run(*argv, "--server-version", "2.10.3")
    [xkey] = _warnings(capsys.readouterr().out, "xkey-broken")
    assert xkey.startswith(f"{settings}: keys.xkey_seed_file: warning: nats-server 2.10.3")
    assert "fixed in 2.10.4" in xkey
    run(*argv, "--server-version", "2.10.4")
    assert not _warnings(capsys.readouterr().out, "xkey-broken")


def test_the_policies_readme_example_prints_what_it_shows(tmp_path: Path) -> None:
    """policies/README.md "Version warnings": its YAML, its command, its output, as written."""
    readme = (Path(__file__).resolve().parents[3] / "policies" / "README.md").read_text()
    section = readme.split("### Version warnings", 1)[1].split("\n## ", 1)[0]
    policy = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    console = re.search(r"```console\n\$ (.*?)\n(.*?)```", section, re.DOTALL)
    assert policy is not None
    assert console is not None
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "roles.yaml").write_text(policy.group(1), encoding="utf-8")
    command, shown = console.groups()
    argv = [sys.executable, "-m", "callout", *shlex.split(command)[1:]]
    result = subprocess.run(
        argv, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert (result.stdout + result.stderr).splitlines() == shown.splitlines()
