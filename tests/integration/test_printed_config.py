"""The server config `callout nats-config` prints, run by a real nats-server: password and nkey
clients both log in (an nkey client needs the server to send a nonce, see callout.serverconf)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
import yaml

from callout.cli import main
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.service.app import App
from callout.settings import load_settings

pytestmark = pytest.mark.integration

POLICIES = Path(__file__).parents[2] / "policies"
# The example nkey user of policies/users.yaml (its seed is public, documented there).
SENSOR_SEED = "SUAL3SQCIFJSBPC2FL7GVBYLZONJFSY55NZVYCHLBEUXTTOOIAFYTPLUAM"


async def test_nkey_and_password_clients_log_in_with_the_printed_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README step 3 as written: keys, settings, `nats-config`, server; then both logins."""
    port = free_port()
    keys = ConfigModeSetup(tmp_path / "keys", port, encrypted=True).write()
    config = tmp_path / "callout.yaml"
    settings_data = {
        "nats": {
            "servers": [f"nats://127.0.0.1:{port}"],
            "user": "auth",
            "password_file": str(keys.password_file),
        },
        "keys": {
            "issuer_seed_file": str(keys.issuer_seed_file),
            "xkey_seed_file": str(keys.xkey_seed_file),
        },
        "accounts": ["APP", "OPS"],
        "policy": {"directory": str(POLICIES)},
        "http": {"enabled": False},
        "reload": {"watch": False},
    }
    config.write_text(yaml.safe_dump(settings_data), encoding="utf-8")
    assert main(["nats-config", "--config", str(config), "--account", "AUTH"]) == 0
    printed = capsys.readouterr().out
    assert "{ nkey: U" in printed
    server_config = tmp_path / "nats-server.conf"
    server_config.write_text(f"listen: 127.0.0.1:{port}\n{printed}", encoding="utf-8")
    monkeypatch.setenv("NATS_AUTH_PASSWORD", keys.auth_password)
    with NatsServer(server_config, port) as server:
        app = App(load_settings(config, environ={}))
        await app.start()
        try:
            sensor = await nats.connect(
                server.url, nkeys_seed_str=SENSOR_SEED, allow_reconnect=False
            )
            alice = await nats.connect(
                server.url, user="alice", password="alice-secret", allow_reconnect=False
            )
            await asyncio.gather(sensor.flush(), alice.flush())
            assert sensor.is_connected
            assert alice.is_connected
            await asyncio.gather(sensor.close(), alice.close())
        finally:
            await app.stop()
