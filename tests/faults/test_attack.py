"""The attack scenario of `callout bench` at small scale, run as the README shows it: every
phase runs, every attempt is classified, no guess gets in, the service's memory is read.
Outcomes, never timings (the rates are the benchmark's to report)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from callout.bench.outcomes import Outcome, classify
from callout.bench.rawnats import Attempt
from callout.cli import main
from callout.testing import stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPRAY = 200
ATTACKERS = 40


def test_attackers_and_a_spray_beside_honest_clients(tmp_path: Path) -> None:
    """40 wrong-password attackers from 8 source addresses, then 200 unknown nkeys, while
    honest token, nkey and cached-password clients log in throughout."""
    report = tmp_path / "attack.json"
    command = [sys.executable, "-m", "callout", "bench", "--attack", str(ATTACKERS)]
    command += ["--sources", "8", "--honest", "1", "--duration", "2", "--spray", str(SPRAY)]
    command += ["--spray-kind", "nkey", "--spray-concurrency", "32", "--json", str(report)]
    bench = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = bench.communicate(timeout=300)
    finally:
        if bench.poll() is None:  # SIGINT: the bench stops its nats-server and service itself
            bench.send_signal(signal.SIGINT)
            try:
                bench.wait(30)
            finally:
                stop_process(bench)
    assert bench.returncode == 0, stderr[-3000:]
    assert "| attack | nkey |" in stdout
    result = json.loads(report.read_text())
    assert result["plan"]["attackers"] == ATTACKERS
    assert set(result["honest"]) == {"unloaded", "attack", "spray"}
    for phase, kinds in result["honest"].items():
        assert set(kinds) == {"token", "nkey", "password-cached"}
        for kind, tally in kinds.items():
            assert tally["ok"] > 0, (phase, kind, tally)
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
