"""End-to-end login latency with shared state off and on (README "Running several replicas").

One nats-server with JetStream on 127.0.0.1 and one service in this process; sequential
logins of two kinds: nkey logins that succeed (the common case: nothing is written to KV) and
wrong passwords for a new name each (every one counted and written with compare-and-set in the
background). Prints median and p99 per kind and mode. Timings on a shared machine are noisy:
run it on a quiet one.

    .venv/bin/python -m tests.benchmarks.shared_state_latency --logins 300
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
from pathlib import Path

from callout.bench.rawnats import Credential, login
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.secretfiles import write_secret
from callout.service.app import App
from tests.integration.users import SENSOR, write_policy


def _summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


async def _measure(setup: ConfigModeSetup, policies: Path, key: Path, shared: bool, n: int) -> None:
    state = {"enabled": True, "key_file": key, "replicas": 1} if shared else {}
    throttle = {"max_failures_per_ip": 10**6, "max_failures_per_principal_unfamiliar": 10**6}
    app = App(setup.settings(policies, state=state, throttle=throttle))
    await app.start()
    try:
        nkey = Credential(nkey=SENSOR)
        results: dict[str, list[float]] = {"nkey login": [], "wrong password": []}
        for number in range(n):
            attempt = await login("127.0.0.1", setup.port, nkey, 5.0)
            assert attempt.ok, attempt.error
            results["nkey login"].append(attempt.latency)
            guess = Credential(fields={"user": f"nobody{number}", "pass": "guess"})
            attempt = await login("127.0.0.1", setup.port, guess, 5.0)
            results["wrong password"].append(attempt.latency)
        mode = "shared" if shared else "local "
        for kind, latencies in results.items():
            print(f"{mode} {kind:15} {_summary(latencies)}")  # noqa: T201 - the report
    finally:
        await app.stop()


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        setup = ConfigModeSetup(root / "server", free_port(), jetstream=True).write()
        policies = write_policy(root / "policies", "APP", "APP")
        key = root / "state-key"
        write_secret(key, secrets.token_hex(32))
        with NatsServer(setup.config_file, setup.port):
            for shared in (False, True, False, True):
                await _measure(setup, policies, key, shared, n)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=300)
    asyncio.run(main(parser.parse_args().logins))
