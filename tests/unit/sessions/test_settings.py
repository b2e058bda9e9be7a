"""The ``sessions`` settings section."""

from __future__ import annotations

from pathlib import Path

import pytest

from callout.errors import ConfigError
from callout.settings import Settings, load_settings

VALID = {"keys": {"issuer_seed_file": "issuer.nk"}, "accounts": ["APP"]}


def settings(**values: object) -> Settings:
    return load_settings(None, **VALID, **values)


def test_sessions_are_off_by_default() -> None:
    """Nothing changes for a deployment that does not ask for live sessions."""
    loaded = settings()
    assert not loaded.sessions.enabled
    assert loaded.sessions.revocation == "act"


def test_enabled_sessions_need_a_system_login() -> None:
    """Without the system account there are no connect events and no kick: say so."""
    with pytest.raises(ConfigError, match="system account") as caught:
        settings(sessions={"enabled": True})
    assert "sessions" in str(caught.value)


def test_a_system_login_is_a_nats_login(tmp_path: Path) -> None:
    """The same keys as the service's own login, checked the same way."""
    loaded = settings(
        sessions={"enabled": True, "system": {"user": "sys", "password_file": tmp_path / "pw"}},
    )
    assert loaded.sessions.system is not None
    assert loaded.sessions.system.user == "sys"
    with pytest.raises(ConfigError, match="password_file needs user"):
        settings(sessions={"enabled": True, "system": {"password_file": tmp_path / "pw"}})
