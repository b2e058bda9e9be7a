"""The reconnect storm: 2,000 logged-in clients, their nats-server restarts, and all log in
again, every one answered from the decision cache (no KDF verification). How long it takes and
how many clients waited out an auth timeout on the way is measured (printed here; README
"Performance" for a quiet machine), not asserted: it depends on what else the machine runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

from callout.bench.driver import Stack
from callout.bench.scenarios import SCENARIOS, BenchIdentities
from callout.bench.storm import storm
from callout.devserver.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 2000
KDF = "callout_kdf_verifications_total"


async def test_two_thousand_clients_come_back_after_a_server_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a restart every client logs in at once; every one comes back, from the cache."""
    identities = BenchIdentities.create()
    scenario = SCENARIOS["password-cached"]
    stack = Stack(tmp_path, identities, scenario)
    stack.metrics_port = free_port()
    stack.start()
    before = [0.0]

    def restart() -> None:
        assert stack.server is not None
        before[0] = stack.metric(KDF)
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
        verifications = stack.metric(KDF) - before[0]
    finally:
        stack.stop()
    assert result.connected_before == CLIENTS
    assert result.reconnected == CLIENTS  # none lost: a client that timed out tried again
    assert verifications == 0  # every reconnect a cache hit
    # the only refusal a client may meet is the server's auth timeout (a busy machine)
    assert set(result.refusals) <= {"-ERR 'Authorization Violation'"}, result.as_dict()
    assert sum(result.refusals.values()) == result.auth_timeouts
    with capsys.disabled():
        sys.stdout.write(f"\nreconnect storm: {json.dumps(result.as_dict())}\n")


def _storm_cli(*extra: str) -> dict[str, object]:
    command = [sys.executable, "-m", "callout", "bench", "--storm", "8", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    # 0: all back with no auth timeout; 1: all back or not, with timeouts (a loaded machine)
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_a_cold_storm_pays_one_kdf_per_distinct_user_a_warm_one_none() -> None:
    """`--users` distinct password users; `--restart-service` empties the decision cache before
    the server restarts, so every user costs at least one KDF verification; without it, none
    (every login a cache hit). Outcomes only: how long recovery takes is measured, not judged."""
    cold = _storm_cli("--users", "4", "--restart-service")
    assert (cold["users"], cold["service_restarted"], cold["reconnected"]) == (4, True, 8)
    assert cast("int", cold["kdf_verifications"]) >= 4
    warm = _storm_cli("--users", "4")
    assert (warm["users"], warm["service_restarted"], warm["reconnected"]) == (4, False, 8)
    assert warm["kdf_verifications"] == 0


def test_a_service_restarted_with_the_shared_decision_cache_is_warm() -> None:
    """`--shared-state on`: the decision cache lives in JetStream KV too, the service wrote
    its entries before it stopped (the drain) and reads them back before it subscribes, so
    the restarted service's storm costs no KDF verification."""
    shared = _storm_cli("--users", "4", "--restart-service", "--shared-state", "on")
    assert (shared["service_restarted"], shared["shared_state"], shared["reconnected"]) == (
        True,
        True,
        8,
    )
    assert shared["kdf_verifications"] == 0


def test_the_storm_takes_shared_state_on_or_off_only() -> None:
    command = [sys.executable, "-m", "callout", "bench", "--storm", "8", "--shared-state", "both"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--shared-state is on or off" in done.stderr
