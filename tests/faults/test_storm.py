"""The reconnect storm: 2,000 logged-in clients, their nats-server restarts, all log in again
with no auth timeout, thanks to the decision cache (and the service's quick reconnect)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callout.bench.driver import Stack
from callout.bench.scenarios import SCENARIOS, BenchIdentities
from callout.bench.storm import storm

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 2000


async def test_two_thousand_clients_come_back_after_a_server_restart(tmp_path: Path) -> None:
    """After a restart every client logs in at once; none may wait out the auth timeout."""
    identities = BenchIdentities.create()
    scenario = SCENARIOS["password-cached"]
    stack = Stack(tmp_path, identities, scenario)
    stack.start()

    def restart() -> None:
        assert stack.server is not None
        stack.server.stop()
        stack.server.start()

    try:
        result = await storm(
            "127.0.0.1",
            stack.port,
            scenario.credentials(identities),
            clients=CLIENTS,
            restart_server=restart,
        )
    finally:
        stack.stop()
    assert result.connected_before == CLIENTS
    assert result.reconnected == CLIENTS
    assert result.auth_timeouts == 0, result.as_dict()
    assert result.refusals == {}, result.as_dict()
