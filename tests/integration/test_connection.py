"""The service's own NATS connection against a real nats-server: what the log says when its
login is refused, when nothing listens, and when it shuts down normally."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from callout.devserver.processes import free_port
from callout.secretfiles import write_secret
from callout.service.app import App
from callout.service.connection import OWN_LOGIN_REFUSED
from callout.testing import captured_logs
from tests.integration.config_environment import ConfigEnvironment
from tests.integration.conftest import ENVIRONMENTS
from tests.integration.environments import Environment

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("deployment", [ENVIRONMENTS[1]], indirect=True, ids=["accounts"]),
]


def _events(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def _start_for(app: App, seconds: float) -> None:
    starting = asyncio.create_task(app.start())
    await asyncio.sleep(seconds)
    app.request_stop()
    await starting
    await app.stop()


async def test_a_refused_service_login_is_one_clear_error_line(
    deployment: ConfigEnvironment, tmp_path: Path
) -> None:
    """It used to loop `Authorization Violation` 4x/s with no hint whose login it was."""
    wrong = tmp_path / "wrong-password"
    write_secret(wrong, "not-the-password")
    nats = {
        "servers": [deployment.url],
        "user": deployment.setup.auth_user,
        "password_file": wrong,
    }
    with captured_logs("info") as buffer:
        app = App(deployment.settings(nats=nats))
        await _start_for(app, 3.0)
    events = _events(buffer.getvalue())
    refused = [e for e in events if e["event"] == "nats_login_refused"]
    assert len(refused) == 1, [e["event"] for e in events]
    assert refused[0]["reason"] == OWN_LOGIN_REFUSED
    # The server closes the connection after its -ERR; on a busy machine a retry can meet that
    # close as a reset before it reads the -ERR. Nothing else may be reported.
    others = [
        e["reason"]
        for e in events
        if e["event"] in ("nats_error", "nats_connect_failed")
        and not e["reason"].startswith("ConnectionResetError")
    ]
    assert not others
    assert "not-the-password" not in buffer.getvalue()


async def test_nothing_listening_is_one_warning_naming_the_url_without_credentials(
    deployment: Environment,
) -> None:
    """One line per state change, not one per attempt; the URL tells where it tried."""
    url = f"nats://someone:hunter2@127.0.0.1:{free_port()}"
    with captured_logs("info") as buffer:
        app = App(deployment.settings(nats={"servers": [url]}))
        await _start_for(app, 3.0)
    failed = [e for e in _events(buffer.getvalue()) if e["event"] == "nats_connect_failed"]
    assert len(failed) == 1
    assert failed[0]["servers"] == [url.replace("someone:hunter2@", "***@")]
    assert "hunter2" not in buffer.getvalue()


async def test_a_normal_shutdown_logs_no_disconnect_warning(deployment: Environment) -> None:
    """A warning at every rolling restart trains operators to ignore warnings."""
    with captured_logs("info") as buffer:
        app = App(deployment.settings())
        await app.start()
        await app.stop()
    events = _events(buffer.getvalue())
    assert any(e["event"] == "nats_connected" for e in events)
    assert not [e for e in events if e["level"] == "warning"], events
