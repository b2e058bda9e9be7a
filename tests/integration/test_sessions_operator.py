"""Live sessions in operator mode: the system login is a user JWT of the SYS account, the
grants are JWTs signed for the target accounts, kicks and rejections work the same way."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from callout.devserver.operator_mode import OperatorModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.secretfiles import write_secret
from callout.service.app import App
from callout.testing import captured_logs
from tests.integration.conftest import PASSWORDS, write_policy
from tests.integration.test_sessions import live, metric, refused, remove_user, until


@pytest.fixture(scope="module")
def operator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorModeSetup]:
    directory = tmp_path_factory.mktemp("sessions-operator")
    setup = OperatorModeSetup(
        directory / "keys", free_port(), target_accounts=("APP", "OPS"), default_sentinel=True
    ).write()
    with NatsServer(setup.config_file, setup.port):
        yield setup


@pytest.fixture
async def started() -> AsyncIterator[list[App]]:
    """The apps a test started, stopped afterwards."""
    apps: list[App] = []
    yield apps
    for app in apps:
        await app.stop()


async def start(setup: OperatorModeSetup, policies: Path, apps: list[App], **overrides: Any) -> App:
    sessions = {"enabled": True, "system": {"creds_file": setup.system_creds_file}}
    app = App(setup.settings(policies, sessions=sessions, reload={"watch": False}, **overrides))
    apps.append(app)
    await app.start()
    return app


def _pass(user: str) -> dict[str, str]:
    return {"user": user, "pass": PASSWORDS[user]}


async def test_a_removed_user_is_kicked_in_operator_mode(
    operator_server: OperatorModeSetup, started: list[App], tmp_path: Path
) -> None:
    """The same promise as in config mode, with account keys and a SYS user JWT."""
    policies = write_policy(tmp_path / "policies", "APP", "OPS")
    app = await start(operator_server, policies, started)
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    client: Client = await nats.connect(
        f"nats://127.0.0.1:{operator_server.port}",
        user="alice",
        password=PASSWORDS["alice"],
        allow_reconnect=False,
        closed_cb=on_closed,
    )
    try:
        info = json.loads((await client.request("$SYS.REQ.USER.INFO", b"", timeout=2)).data)
        assert info["data"]["account"] == operator_server.public_key("APP")
        await until(lambda: len(live(app, "alice")) == 1, "alice connected")
        assert live(app, "alice")[0].account == "APP"
        remove_user(policies, "alice")
        assert app.reload()
        await asyncio.wait_for(closed.wait(), timeout=5)
        assert await refused(operator_server, **_pass("alice"))
    finally:
        await client.close()


async def test_a_signing_key_the_server_does_not_know_is_reported_in_operator_mode(
    operator_server: OperatorModeSetup, started: list[App], tmp_path: Path
) -> None:
    """A target account signing key that was never pushed to the server: every grant signed
    with it is refused, and the service says so."""
    policies = write_policy(tmp_path / "policies", "APP", "OPS")
    unknown = operator_server.add_signing_key("APP", activate=True)
    try:
        seed = tmp_path / "unknown-app.nk"
        write_secret(seed, unknown.seed)
        values = operator_server.settings_values(policies)["operator"]
        values["accounts"]["APP"]["signing_seed_file"] = seed
        with captured_logs() as logs:
            app = await start(operator_server, policies, started, operator=values)
            assert await refused(operator_server, **_pass("alice"))
            labels = 'reason="User JWT issuer \\"*\\" is not known"'
            await until(
                lambda: metric(app, "callout_server_rejections_total", labels, missing=0) == 1,
                "a rejection counted",
            )
        assert "server_rejected_grant" in logs.getvalue()
        assert metric(app, "callout_sessions") == 0
    finally:
        operator_server.remove_signing_key("APP", unknown.public_key)


async def test_a_narrowed_role_reconnects_narrower_in_operator_mode(
    operator_server: OperatorModeSetup, started: list[App], tmp_path: Path
) -> None:
    """After the kick, the client's reconnect carries the new account-signed grant."""
    policies = write_policy(tmp_path / "policies", "APP", "OPS")
    app = await start(operator_server, policies, started)
    reconnected = asyncio.Event()

    async def on_reconnected() -> None:
        reconnected.set()

    client = await nats.connect(
        f"nats://127.0.0.1:{operator_server.port}",
        user="alice",
        password=PASSWORDS["alice"],
        reconnected_cb=on_reconnected,
        reconnect_time_wait=0.1,
        max_reconnect_attempts=20,
    )
    try:
        info = json.loads((await client.request("$SYS.REQ.USER.INFO", b"", timeout=2)).data)
        assert "user.alice.>" in info["data"]["permissions"]["publish"]["allow"]
        await until(lambda: len(live(app, "alice")) == 1, "alice connected")
        edit = policies / "policy.yaml"
        edit.write_text(edit.read_text().replace("roles: [app, private]", "roles: [app]", 1))
        assert app.reload()
        await asyncio.wait_for(reconnected.wait(), timeout=10)
        info = json.loads((await client.request("$SYS.REQ.USER.INFO", b"", timeout=2)).data)
        allowed = info["data"]["permissions"]["publish"]["allow"]
        assert "user.alice.>" not in allowed
        assert "app.>" in allowed
    finally:
        await client.close()
