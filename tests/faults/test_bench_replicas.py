"""`callout bench --replicas N` at a tiny size, through the real command line: both modes of
every default scenario run, logins are answered by more than one replica, the shared mode
really is on shared state, every wrong password for a new name is written to the throttle
bucket, bad arguments are usage errors, and Ctrl-C stops every process it started.
Structure and behaviour, never timings (the numbers are the benchmark's to report)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest
from nats.js.errors import NoKeysError

from callout.bench.replicas import ReplicaStack, run_replicas
from callout.bench.scenarios import SCENARIOS, BenchIdentities
from callout.cli import main
from callout.devserver.processes import stop_process
from tests.faults.benchcli import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = ["--count", "50", "--duration", "2", "--concurrency", "1"]


@pytest.mark.timeout(300)
def test_two_replicas_with_shared_state_off_and_on(tmp_path: Path) -> None:
    """The default run at a tiny size: 3 scenarios x 2 modes, each window answered by both
    replicas, the shared mode on shared state throughout, and the added-latency table."""
    report = tmp_path / "replicas.json"
    result = run_bench(["--replicas", "2", *TINY, "--json", str(report)], timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "R1 buckets" in result.stdout
    rows = json.loads(report.read_text())
    scenarios = ("nkey", "password-cached", "wrong-password-new-name")
    assert [(r["scenario"], r["shared_state"]) for r in rows] == [
        (name, mode) for name in scenarios for mode in ("off", "on")
    ]
    for row in rows:
        assert row["replicas"] == 2, row
        assert row["concurrency"] == 1, row
        assert row["ok"] > 0, row
        assert row["failed"] == 0, row
        assert {"auths_per_s", "p50_ms", "p99_ms"} <= set(row), row
        assert row["cpu_ms_per_auth"]["service"] > 0, row
        # nats-server spreads the queue group's requests: both replicas answered logins
        assert len(row["answered_by_replica"]) == 2, row
        assert min(row["answered_by_replica"]) > 0, row
        assert row["kv_up"] is (True if row["shared_state"] == "on" else None), row
        assert 0 <= row["shed_overloaded"] <= sum(row["answered_by_replica"]), row
    added = result.stdout.split("added p50 ms (on - off)", 1)[1]
    for name in scenarios:
        assert f"| {name} | 1 | " in added


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("replicas", "nodes"), [(2, 1), (3, 3)], ids=["1-node", "3-node"])
async def test_every_wrong_password_for_a_new_name_is_written_to_the_throttle_bucket(
    tmp_path: Path, replicas: int, nodes: int
) -> None:
    """The scenario's point: with shared state each guess's counts reach KV: a key for the
    (name, address) pair and one for the name from an unfamiliar address, per name tried,
    and one for the address they all share; in a bucket with a replica per node (R1, R3)."""
    stack = ReplicaStack(tmp_path, BenchIdentities.create(), replicas, nodes)
    try:
        stack.start_server()
        (row,) = await run_replicas(
            stack,
            SCENARIOS["wrong-password-new-name"],
            shared=True,
            concurrencies=[2],
            count=30,
            duration=30.0,
        )
        assert row.row.result.ok == 30, row.row.result.failures
        assert row.kv_up
        assert min(row.answered) > 0, row.answered  # clients log in to every node in turn
        names = sum(stack.last_answered)  # warm-up and window: a new name each
        keys, bucket_replicas = await _throttle_keys(stack, expected=2 * names + 1)
    finally:
        stack.stop()
    assert names >= 30
    assert len(keys) == 2 * names + 1
    assert bucket_replicas == nodes


async def _throttle_keys(stack: ReplicaStack, expected: int) -> tuple[list[str], int]:
    """The throttle bucket's keys but the probe's, and its replicas, read as the service's user
    (a bounded wait for the replicas' writers)."""
    setup = stack.setup
    client = await nats.connect(
        f"nats://127.0.0.1:{stack.port}", user=setup.auth_user, password=setup.auth_password
    )
    try:
        js = client.jetstream()
        bucket = await js.key_value("callout_throttle")
        info = await js.stream_info("KV_callout_throttle")
        deadline = time.monotonic() + 10
        while True:
            try:
                keys = [key for key in await bucket.keys() if key != "_probe"]
            except NoKeysError:  # nats-py's listing can miss keys delivered before it looked
                keys = []
            if len(keys) >= expected or time.monotonic() > deadline:
                return keys, info.config.num_replicas or 1
            await asyncio.sleep(0.2)
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--replicas", "0"], "--replicas must be at least 1 (got 0)"),
        (["--replicas", "-2"], "--replicas must be at least 1"),
        (["--shared-state", "on"], "--shared-state and --nodes need --replicas N"),
        (["--nodes", "3"], "--shared-state and --nodes need --replicas N"),
        (["--replicas", "2", "--scenario", "floor"], "--scenario floor: the floor"),
        (["--replicas", "2", "--scenario", "nkey-xkey"], "--scenario nkey-xkey: xkey"),
        (["--replicas", "2", "--concurrency", "0"], "--concurrency must be positive integers"),
        (["--replicas", "2", "--concurrency", "a,b"], "--concurrency must be positive integers"),
        (["--replicas", "2", "--count", "0"], "--count must be at least 1"),
        (["--replicas", "2", "--storm", "10"], "cannot be combined with --storm"),
    ],
)
def test_bad_replica_arguments_are_usage_errors(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before any process starts, with what is wrong and which flag."""
    assert main(["bench", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_a_shared_state_mode_that_is_not_on_off_or_both_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--replicas", "2", "--shared-state", "maybe"])
    assert exit_.value.code == 2


@pytest.mark.timeout(180)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_stops_the_server_and_every_replica(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Ctrl-C or SIGTERM once nats-server and both replicas are started: exit 130, and no
    process the bench started is left."""
    command = [sys.executable, "-m", "callout", "bench", "--replicas", "2", "--shared-state"]
    command += ["on", "--scenario", "nkey", "--count", "1000000", "--duration", "60"]
    log = tmp_path / "bench.log"
    with log.open("wb") as out:
        bench = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while len(children) < 3 and time.monotonic() < deadline and bench.poll() is None:
            time.sleep(0.2)
            children = _children(bench.pid)  # nats-server, then the two replicas
        assert len(children) == 3, log.read_text()
        bench.send_signal(signum)
        bench.wait(60)
        assert bench.returncode == 130
        assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
    finally:
        stop_process(bench)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []
