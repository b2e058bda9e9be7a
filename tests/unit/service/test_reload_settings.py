"""Reload re-reads the settings: keys and accounts change without a restart, the rest warns."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from structlog.testing import capture_logs

from callout.devserver.operator_mode import OperatorModeSetup
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.secretfiles import write_secret
from callout.service.app import App
from callout.settings import Settings, load_settings


def _app(tmp_path: Path) -> tuple[App, OperatorModeSetup, list[Settings]]:
    setup = OperatorModeSetup(tmp_path / "keys", 4222, signing_keys=True).write()
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text("version: 1\n")
    current = [setup.settings(policies)]
    return App(current[0], settings_source=lambda: current[0]), setup, current


def test_a_new_active_key_in_the_settings_applies_on_reload(tmp_path: Path) -> None:
    """Rotation: drop the new seed in, point the settings at it, reload: no restart."""
    app, setup, current = _app(tmp_path)
    assert app.reload()
    old = setup.accounts["APP"].signer
    new = KeyPair.generate(KeyRole.ACCOUNT)
    write_secret(tmp_path / "app-2.nk", new.seed)
    values = setup.settings_values(tmp_path / "policies")
    values["operator"]["accounts"]["APP"].update(
        signing_seed_file=tmp_path / "app-2.nk", signing_keys=[old.public_key, new.public_key]
    )
    current[0] = load_settings(None, **values)
    with capture_logs() as logs:
        assert app.reload()
    issuer = app.current_runtime().issuer
    assert issuer.accounts["APP"].key.public_key == new.public_key  # type: ignore[attr-defined]
    assert not [entry for entry in logs if entry["event"] == "reload_needs_restart"]


def test_a_bad_new_key_keeps_the_old_one(tmp_path: Path) -> None:
    """A seed dropped in by mistake must not stop every login: the last good state stays."""
    app, setup, current = _app(tmp_path)
    assert app.reload()
    before = app.current_runtime()
    values = setup.settings_values(tmp_path / "policies")
    write_secret(tmp_path / "stranger.nk", KeyPair.generate(KeyRole.ACCOUNT).seed)
    values["operator"]["accounts"]["APP"]["signing_seed_file"] = tmp_path / "stranger.nk"
    current[0] = load_settings(None, **values)
    with capture_logs() as logs:
        assert not app.reload()
    assert app.current_runtime() is before
    assert "is neither the account key" in logs[-1]["error"]


def test_sections_that_need_a_restart_are_named(tmp_path: Path) -> None:
    """Changing the NATS servers on reload cannot take effect; say so instead of ignoring it."""
    app, setup, current = _app(tmp_path)
    values = setup.settings_values(tmp_path / "policies")
    values["nats"]["servers"] = ["nats://elsewhere:4222"]
    current[0] = load_settings(None, **values)
    with capture_logs() as logs:
        assert app.reload()
    warning = next(entry for entry in logs if entry["event"] == "reload_needs_restart")
    assert warning["sections"] == ["nats"]


def test_the_mode_cannot_change_on_reload(tmp_path: Path) -> None:
    """A config-mode signer on an operator-mode server would fail every login."""
    app, _, current = _app(tmp_path)
    assert app.reload()
    write_secret(tmp_path / "issuer.nk", KeyPair.generate(KeyRole.ACCOUNT).seed)
    current[0] = load_settings(
        None,
        keys={"issuer_seed_file": tmp_path / "issuer.nk"},
        accounts=["APP"],
        policy={"directory": tmp_path / "policies"},
    )
    with capture_logs() as logs:
        assert not app.reload()
    assert "mode cannot change" in logs[-1]["error"]


@pytest.mark.parametrize(
    ("contents", "error"),
    [(b"mode: operator\nsecret: caf\xe9-contents\n", "not UTF-8"), (None, "cannot read")],
    ids=["not-utf8", "unreadable"],
)
def test_a_settings_file_that_is_not_utf8_or_unreadable_fails_the_reload_and_keeps_the_last_state(
    tmp_path: Path, contents: bytes | None, error: str
) -> None:
    """SIGHUP with a broken or vanished file: reload_failed, the running state stays, no file
    contents in the log line."""
    setup = OperatorModeSetup(tmp_path / "keys", 4222, signing_keys=True).write()
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text("version: 1\n")
    config = tmp_path / "callout.yaml"
    config.write_text(yaml.safe_dump(_plain(setup.settings_values(policies))), encoding="utf-8")
    app = App(load_settings(config), settings_source=lambda: load_settings(config))
    assert app.reload()
    before = app.current_runtime()
    if contents is None:
        config.unlink()
    else:
        config.write_bytes(contents)
    with capture_logs() as logs:
        assert not app.reload("signal")
    assert app.current_runtime() is before
    assert logs[-1]["event"] == "reload_failed"
    assert error in logs[-1]["error"]
    assert "contents" not in str(logs)


def test_a_fixed_policy_logs_policy_reloaded_after_a_failure(tmp_path: Path) -> None:
    """Broken then fixed back to the running version: the last line must not stay
    reload_failed."""
    app, _, _ = _app(tmp_path)
    assert app.reload("watch")
    broken = tmp_path / "policies" / "broken.yaml"
    broken.write_text("version: 1\nusers: [\n")
    with capture_logs() as logs:
        assert not app.reload("watch")
        broken.unlink()
        assert app.reload("watch")
        assert app.reload("watch")  # nothing new: silence again
    reloads = [e for e in logs if e["event"] in ("reload_failed", "policy_reloaded")]
    assert [entry["event"] for entry in reloads] == ["reload_failed", "policy_reloaded"]
    assert reloads[-1]["recovered"] is True
    assert reloads[-1]["changed"] is False


def _plain(values: object) -> object:
    """Settings values as YAML can write them (paths as strings)."""
    if isinstance(values, dict):
        return {key: _plain(value) for key, value in values.items()}
    if isinstance(values, list | tuple):
        return [_plain(value) for value in values]
    return str(values) if isinstance(values, Path) else values
