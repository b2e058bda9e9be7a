"""The server-version guard against a real nats-server (2.15.1, the pinned wheel): every
request counted by band; a version the settings do not accept gets a signed deny on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callout.decision import Reason
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.service.app import App
from tests.counts import decisions
from tests.integration.conftest import PASSWORDS, write_policy
from tests.integration.rawclient import raw_connect


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ConfigModeSetup, Path, NatsServer]]:
    directory = tmp_path_factory.mktemp("versions")
    setup = ConfigModeSetup(directory / "keys", free_port()).write()
    policies = write_policy(directory / "policies", "APP", "OPS")
    with NatsServer(setup.config_file, setup.port) as nats_server:
        yield setup, policies, nats_server


def _count(app: App, band: str, advisories: str) -> float | None:
    return app.metrics.registry.get_sample_value(
        "callout_server_version_requests_total", {"band": band, "advisories": advisories}
    )


async def test_requests_are_counted_by_the_servers_band(
    server: tuple[ConfigModeSetup, Path, NatsServer],
) -> None:
    setup, policies, _ = server
    app = App(setup.settings(policies))
    await app.start()
    try:
        _, line = await raw_connect(setup.port, {"user": "alice", "pass": PASSWORDS["alice"]})
    finally:
        await app.stop()
    assert line.startswith("PONG")
    assert _count(app, "2.15", "none") == 1
    assert _count(app, "2.12", "open") == 0  # primed: every band exists from the start


async def test_a_server_below_the_minimum_gets_a_signed_deny(
    server: tuple[ConfigModeSetup, Path, NatsServer],
) -> None:
    """An answer, not silence: the server logs the service's signed error."""
    setup, policies, nats_server = server
    app = App(setup.settings(policies, server_versions={"minimum": "2.99.0"}))
    await app.start()
    try:
        _, line = await raw_connect(setup.port, {"user": "alice", "pass": PASSWORDS["alice"]})
    finally:
        await app.stop()
    assert "Authorization Violation" in line
    assert decisions(app.metrics)[Reason.SERVER_VERSION_NOT_ACCEPTED] == 1
    denied = app.metrics.registry.get_sample_value(
        "callout_auth_requests_total",
        {"outcome": "deny", "reason": "server_version_not_accepted", "backend": "none"},
    )
    assert denied == 1
    assert "Auth callout service returned an error: not authorized" in nats_server.log_text()
