"""A quick attack probe (not collected by pytest): wrong-password attackers in a closed loop from
127.0.0.2-.9 while 16 honest token and nkey clients log in from 127.0.0.1, against nats-server
and a separate `callout serve` process (the bench's token stack).

    .venv/bin/python -m tests.benchmarks.attack_probe --attackers 600 --seconds 15

Prints JSON: the honest rate unloaded (5 s) and under attack, honest outcomes per kind (any
outcome but ``ok`` is a failure or a timeout), the honest p99, and the attackers' outcomes.
The load generator shares the machine with both servers: compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from callout.bench.driver import Stack
from callout.bench.rawnats import Credential
from callout.bench.scenarios import SCENARIOS, BenchIdentities

LIMIT = 5.0


async def _login(port: int, credential: Credential, source: str) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        opened = asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        reader, writer = await asyncio.wait_for(opened, LIMIT)
    except (OSError, TimeoutError):
        return "connect", time.perf_counter() - started
    try:
        info = await asyncio.wait_for(reader.readline(), LIMIT)
        writer.write(credential.connect_line(json.loads(info[5:])))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), LIMIT)
        outcome = "ok" if line.startswith(b"PONG") else line.decode(errors="replace").strip()
    except (OSError, TimeoutError, ValueError) as failure:
        outcome = type(failure).__name__
    finally:
        writer.close()
    return outcome, time.perf_counter() - started


class _Probe:
    def __init__(self, port: int, identities: BenchIdentities) -> None:
        self.port = port
        self.honest = identities.token_credentials()[:8] + identities.nkey_credentials()[:8]
        self.wrong = identities.password_credentials(wrong=True)
        self.outcomes: Counter[str] = Counter()
        self.attacks: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.until = 0.0

    async def honest_client(self, index: int) -> None:
        credential = self.honest[index % len(self.honest)]
        kind = "token" if "auth_token" in credential.fields else "nkey"
        while time.monotonic() < self.until:
            outcome, latency = await _login(self.port, credential, "127.0.0.1")
            self.outcomes[f"{kind}:{outcome}"] += 1
            if outcome == "ok":
                self.latencies.append(latency)

    async def attacker(self, index: int) -> None:
        credential = self.wrong[index % len(self.wrong)]
        source = f"127.0.0.{2 + index % 8}"
        while time.monotonic() < self.until:
            outcome, _ = await _login(self.port, credential, source)
            self.attacks[outcome[:40]] += 1

    async def window(self, seconds: float, attackers: int) -> float:
        self.outcomes.clear()
        self.latencies.clear()
        self.until = time.monotonic() + seconds
        clients = [self.honest_client(i) for i in range(16)]
        await asyncio.gather(*clients, *(self.attacker(i) for i in range(attackers)))
        return len(self.latencies) / seconds


async def _run(attackers: int, seconds: float) -> dict[str, object]:
    identities = BenchIdentities.create()
    stack = Stack(Path(tempfile.mkdtemp(prefix="attack-probe-")), identities, SCENARIOS["token"])
    stack.start()
    try:
        probe = _Probe(stack.port, identities)
        unloaded = await probe.window(5.0, 0)
        loaded = await probe.window(seconds, attackers)
    finally:
        stack.stop()
    latencies = sorted(probe.latencies)
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan")
    return {
        "honest_unloaded_per_s": round(unloaded, 1),
        "honest_under_attack_per_s": round(loaded, 1),
        "honest": dict(probe.outcomes),
        "honest_p99_ms": round(1000 * p99, 1),
        "attackers": dict(probe.attacks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    report = json.dumps(asyncio.run(_run(args.attackers, args.seconds)), indent=1)
    sys.stdout.write(report + "\n")


if __name__ == "__main__":
    main()
