"""Policy-vs-settings warnings: grants through scoped keys, unknown accounts, the system account.

`callout policy check --config` prints them with file:line; the service logs them on load.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from callout.cli import policy as cli
from callout.credentials.passwords import hash_password
from callout.devserver.operator_mode import OperatorModeSetup
from callout.policy.loader import check_policy
from callout.service.placement import Placement, placement_warnings

_POLICY = """\
version: 1
defaults: {{account: APP}}
roles:
  app: {{publish: {{allow: ["app.>"]}}}}
  conditions-only: {{src: ["10.0.0.0/8"]}}
  root: {{allow_system_account: true}}
users:
  alice: {{password: "{h}", roles: [app]}}
  scoper: {{password: "{h}", roles: [app], account: SCOPED}}
  scoped-quiet: {{password: "{h}", roles: [conditions-only], account: SCOPED}}
  lost: {{password: "{h}", roles: [app], account: NOWHERE}}
  sys-oops: {{password: "{h}", roles: [app], account: SYS}}
  sys-ok: {{password: "{h}", roles: [app, root], account: SYS}}
groups:
  "cn=ops": {{roles: [app], account: SCOPED}}
"""


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("placement")
    (directory / "p.yaml").write_text(_POLICY.format(h=hash_password("pw")))
    return directory


def _warnings(directory: Path, placement: Placement) -> dict[str, str]:
    result = check_policy(directory)
    assert result.snapshot is not None
    assert result.merged is not None
    issues = placement_warnings(result.merged, result.snapshot, placement)
    return {issue.path: f"{issue.line}: {issue.message}" for issue in issues}


def test_each_problem_is_reported_at_its_entry(policy_dir: Path) -> None:
    """The security team sees which user or group, where, and why logins will fail or differ."""
    placement = Placement(
        frozenset({"APP", "SCOPED", "SYS"}), frozenset({"SCOPED"}), "SYS", "operator.accounts"
    )
    warnings = _warnings(policy_dir, placement)
    assert set(warnings) == {"users.scoper", "users.lost", "users.sys-oops", "groups.cn=ops"}
    assert "signs with a scoped signing key" in warnings["users.scoper"]
    assert "signs with a scoped signing key" in warnings["groups.cn=ops"]
    assert "'NOWHERE' is not in the service's operator.accounts" in warnings["users.lost"]
    assert "system account" in warnings["users.sys-oops"]
    assert warnings["users.scoper"].startswith("9:")


def test_the_default_account_must_exist_too(policy_dir: Path) -> None:
    """A default nobody can be placed into refuses everyone who relies on it."""
    warnings = _warnings(policy_dir, Placement(frozenset({"SCOPED", "SYS"})))
    assert "is not in the service's accounts" in warnings["defaults.account"]
    assert "users.alice" in warnings


def test_policy_check_with_the_service_settings_prints_them(
    policy_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`callout policy check --config` is how CI catches grants a scoped key would ignore."""
    setup = OperatorModeSetup(
        tmp_path / "keys", 4222, target_accounts=("APP",), scoped_accounts=("SCOPED",)
    ).write()
    values = setup.settings_values(policy_dir)
    config = tmp_path / "callout.yaml"
    config.write_text(yaml.safe_dump(_plain(values)))
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    argv = ["policy", "check", str(policy_dir), "--config", str(config)]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    args = parser.parse_args([*argv, "--strict"])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert f"{policy_dir / 'p.yaml'}:9: users.scoper: warning: account 'SCOPED' signs" in out
    assert "users.lost: warning: account 'NOWHERE' is not in the service's" in out
    # SYS is not a target of this set-up at all
    assert "users.sys-oops: warning: account 'SYS' is not in the service's" in out


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, Path) else value
