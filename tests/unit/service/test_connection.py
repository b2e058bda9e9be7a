"""The service's NATS connection: backoff on repeated failures only, one log line per state."""

from __future__ import annotations

import json
from types import SimpleNamespace

from nats import errors as nats_errors

from callout.service.connection import (
    OWN_LOGIN_REFUSED,
    Backoff,
    ConnectionLog,
    reconnect_handler,
)
from callout.testing import captured_logs


def test_the_first_retries_stay_fast_for_a_server_restart() -> None:
    """A reconnect storm needs the service subscribed again within reconnect_wait."""
    backoff = Backoff(first=0.25, fast_attempts=8, cap=10.0)
    assert backoff.delay(0) == 0.0
    for failures in range(1, 9):
        assert 0.125 <= backoff.delay(failures, rand=lambda: 1.0) <= 0.25
        assert backoff.delay(failures, rand=lambda: 0.0) == 0.125


def test_repeated_failures_back_off_exponentially_up_to_the_cap() -> None:
    """A wrong URL or password must not be retried four times a second forever."""
    backoff = Backoff(first=0.25, fast_attempts=8, cap=10.0)
    highest = [backoff.delay(n, rand=lambda: 1.0) for n in range(9, 20)]
    assert highest[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(highest) == 10.0
    assert backoff.delay(10_000, rand=lambda: 1.0) == 10.0


def test_jitter_spreads_replicas_between_half_and_the_whole_delay() -> None:
    """Replicas that lost the same server do not retry in lockstep."""
    backoff = Backoff()
    assert backoff.delay(20, rand=lambda: 0.0) == 5.0
    assert backoff.delay(20, rand=lambda: 0.5) == 7.5


def test_reconnects_go_to_the_server_that_failed_least() -> None:
    """With one server down, the others are tried first, each after its own delay."""
    choose = reconnect_handler(Backoff(first=0.25))
    down, up = SimpleNamespace(reconnects=3), SimpleNamespace(reconnects=0)
    chosen, delay = choose([down, up], {})
    assert chosen is up
    assert delay == 0.0


def _events(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_one_warning_per_state_change_not_per_attempt() -> None:
    """Fifty refused attempts are one warning; a different reason is a new one."""
    connection = ConnectionLog(["nats://auth:hunter2@127.0.0.1:4222"])
    with captured_logs("info") as buffer:
        for _ in range(50):
            connection.failed(ConnectionRefusedError(111, "refused"), retry_in=0.25)
        connection.failed(nats_errors.AuthorizationError())
        connection.failed(nats_errors.Error("nats: 'Authorization Violation'"))  # as nats-py
        connection.connected("nats://auth:hunter2@127.0.0.1:4222")
    events = _events(buffer.getvalue())
    assert [e["event"] for e in events] == [
        "nats_connect_failed",
        "nats_login_refused",
        "nats_connected",
    ]
    assert events[0]["servers"] == ["nats://***@127.0.0.1:4222"]
    assert events[1]["reason"] == OWN_LOGIN_REFUSED
    assert events[1]["level"] == "error"
    assert events[2]["after_failures"] == 52
    assert "hunter2" not in buffer.getvalue()


def test_a_lost_connection_warns_once_and_a_shutdown_does_not_warn() -> None:
    """nats_disconnected is for outages; closing on purpose is not one."""
    stopping = False
    connection = ConnectionLog(["nats://127.0.0.1:4222"], lambda: stopping)
    with captured_logs("info") as buffer:
        connection.connected("nats://127.0.0.1:4222")
        connection.disconnected()
        connection.disconnected()
        connection.connected("nats://127.0.0.1:4222")
        stopping = True
        connection.disconnected()
    events = [(e["event"], e["level"]) for e in _events(buffer.getvalue())]
    assert events == [
        ("nats_connected", "info"),
        ("nats_disconnected", "warning"),
        ("nats_reconnected", "info"),
        ("nats_closed", "info"),
    ]
