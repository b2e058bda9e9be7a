"""The attack scenario of `callout bench` at small scale, run as the README shows it: every
phase runs, every attempt is classified, no guess gets in, the service's memory is read.
Outcomes, never timings (the rates are the benchmark's to report)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from callout.bench.outcomes import Outcome, classify
from callout.bench.rawnats import Attempt, Credential, login
from callout.cli import main
from tests.faults.benchcli import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPRAY = 200
ATTACKERS = 40


def test_attackers_and_a_spray_beside_honest_clients(tmp_path: Path) -> None:
    """40 wrong-password attackers from 8 source addresses, then 200 unknown nkeys, while
    honest token, nkey and cached-password clients log in throughout."""
    report = tmp_path / "attack.json"
    arguments = ["--attack", str(ATTACKERS), "--sources", "8", "--honest", "1"]
    arguments += ["--duration", "2", "--spray", str(SPRAY), "--spray-kind", "nkey"]
    arguments += ["--spray-concurrency", "32", "--json", str(report)]
    done = run_bench(arguments, timeout=300)
    stdout, stderr = done.stdout, done.stderr
    assert done.returncode == 0, stderr[-3000:]
    assert "| attack | nkey |" in stdout
    result = json.loads(report.read_text())
    assert result["plan"]["attackers"] == ATTACKERS
    assert set(result["honest"]) == {"unloaded", "attack", "spray"}
    for phase, kinds in result["honest"].items():
        assert set(kinds) == {"token", "nkey", "password-cached"}
        for kind, tally in kinds.items():
            assert tally["ok"] > 0, (phase, kind, tally)
            # what the README promises per phase and kind: rate, share of unloaded, p99, timeouts
            assert {"ok_per_s", "of_unloaded", "p99_ms", "timeouts"} <= set(tally), tally
            assert isinstance(tally["of_unloaded"], float), (phase, kind, tally)
    for name in ("attackers", "spray"):
        tally = result[name]
        assert tally["attempts"] > 0, name
        assert "allowed" not in tally["outcomes"], (name, tally)
        refused = tally["outcomes"].get("denied", 0) + tally["outcomes"].get("dropped", 0)
        assert refused > 0, (name, tally)
    assert result["spray"]["attempts"] == SPRAY  # every distinct key tried exactly once
    memory = result["service_rss_mb"]
    assert memory["peak"] >= memory["peak_attack"] > 0
    assert memory["after_spray"] > 0


@pytest.mark.parametrize(
    "arguments",
    [["--attack", "0"], ["--attack", "--sources", "9"], ["--attack", "--spray", "-1"]],
)
def test_attack_arguments_out_of_range_are_usage_errors(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *arguments]) == 2
    assert "callout bench --attack" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("attempt", "outcome"),
    [
        (Attempt(True, 0.01), Outcome.ALLOWED),
        (Attempt(False, 0.01, "-ERR 'Authorization Violation'"), Outcome.DENIED),
        (Attempt(False, 2.0, "-ERR 'Authorization Violation'"), Outcome.DROPPED),
        (Attempt(False, 5.0, "TimeoutError"), Outcome.TIMED_OUT),
        (Attempt(False, 0.0, "connect: ConnectionRefusedError"), Outcome.CONNECT_FAILED),
        (Attempt(False, 0.1, "connection closed"), Outcome.OTHER),
    ],
)
def test_attempts_are_classified_by_answer_and_wait(attempt: Attempt, outcome: Outcome) -> None:
    """A refusal after the server's auth timeout means the service never answered."""
    assert classify(attempt) is outcome


async def test_a_server_ping_before_the_answer_is_answered_and_the_login_still_counts() -> None:
    """nats-server may send its keep-alive PING before the PONG that ends a login."""
    seen: list[bytes] = []

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'INFO {"server_id":"x","nonce":"abc"}\r\n')
        seen.append(await reader.readline())  # CONNECT
        seen.append(await reader.readline())  # PING
        writer.write(b"PING\r\n")
        seen.append(await reader.readline())  # PONG to our PING
        writer.write(b"PONG\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        attempt = await login("127.0.0.1", port, Credential({"user": "u", "pass": "p"}), 5.0)
    finally:
        listener.close()
        await listener.wait_closed()
    assert attempt.ok, attempt
    assert seen[0].startswith(b"CONNECT ")
    assert seen[1:] == [b"PING\r\n", b"PONG\r\n"]
