"""`callout bench`: rerunnable throughput/latency/CPU benchmark, the reconnect storm and the
attack scenario."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from callout.bench.attack import SOURCES, AttackPlan, format_attack, run_attack
from callout.bench.driver import Row, Stack, format_table, kdf_limit, run_scenario
from callout.bench.outcomes import Outcome
from callout.bench.replicareport import format_replicas
from callout.bench.replicas import MODES, ReplicaStack, run_modes, unfit_for_replicas
from callout.bench.scenarios import FLOOR, SCENARIOS, USERS, BenchIdentities
from callout.bench.storm import storm
from callout.devserver.processes import free_port

# The common cheap logins, and the one whose every login is counted and written.
REPLICA_SCENARIOS = ("nkey", "password-cached", "wrong-password-new-name")


def register(commands: Any) -> None:
    bench = commands.add_parser("bench", help="benchmark: auths/s, latency, CPU per auth")
    bench.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="scenario(s) to run (default: all); with --storm, the one scenario the clients"
        " log in with (default: password-cached, the service's default configuration)",
    )
    bench.add_argument("--concurrency", default="1,8,32", help="comma-separated (default 1,8,32)")
    bench.add_argument("--count", type=int, default=3000, help="logins per window (default 3000)")
    bench.add_argument("--duration", type=float, default=15.0, help="max seconds per window")
    bench.add_argument("--no-baseline", action="store_true", help="skip the static baseline")
    bench.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the floor (the minimal responder every scenario is divided by)",
    )
    bench.add_argument("--json", type=Path, help="also write the rows as JSON here")
    bench.add_argument(
        "--storm", type=int, metavar="CLIENTS", help="run the reconnect storm instead"
    )
    bench.add_argument(
        "--users",
        type=int,
        default=USERS,
        help=f"with --storm: distinct users the clients log in as (default {USERS})",
    )
    bench.add_argument(
        "--restart-service",
        action="store_true",
        help="with --storm: restart the service (empty decision cache) before the server",
    )
    replicas = bench.add_argument_group("replica mode (--replicas)")
    replicas.add_argument(
        "--replicas",
        type=int,
        metavar="N",
        help="run N `callout serve` replicas in one queue group behind one nats-server with"
        " JetStream, with shared state off and/or on (default scenarios: "
        + ", ".join(REPLICA_SCENARIOS)
        + ")",
    )
    replicas.add_argument(
        "--nodes",
        type=int,
        choices=[1, 3],
        help="with --replicas: 1 nats-server (default, R1 buckets) or a 3-node cluster (R3)",
    )
    replicas.add_argument(
        "--shared-state",
        choices=["on", "off", "both"],
        help="with --replicas: state.enabled off, on, or both and the latency it adds"
        " (default both); with --storm: on keeps the decision cache in JetStream KV, so a"
        " service restarted by --restart-service reads it back (default off)",
    )
    attack = bench.add_argument_group("attack scenario (--attack)")
    attack.add_argument(
        "--attack",
        type=int,
        nargs="?",
        const=600,
        metavar="ATTACKERS",
        help="run the attack scenario instead: honest token/nkey/cached-password logins while"
        " ATTACKERS (default 600) clients send wrong passwords; --duration is each phase's length",
    )
    attack.add_argument(
        "--sources", type=int, default=8, help="attacker source addresses 127.0.0.2-9 (default 8)"
    )
    attack.add_argument("--honest", type=int, default=2, help="clients per honest kind (default 2)")
    attack.add_argument(
        "--spray", type=int, default=0, metavar="KEYS", help="then this many distinct unknown keys"
    )
    attack.add_argument("--spray-kind", choices=["nkey", "user"], default="nkey")
    attack.add_argument(
        "--spray-concurrency", type=int, default=256, help="spray clients at once (default 256)"
    )
    bench.set_defaults(func=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    if args.storm and args.replicas is None:
        return asyncio.run(_storm(args))
    if args.replicas is not None or args.shared_state is not None or args.nodes is not None:
        return _replicas(args)
    if args.attack is not None:
        return asyncio.run(_attack(args))
    concurrencies = [int(value) for value in args.concurrency.split(",")]
    names = args.scenario or list(SCENARIOS)
    if args.no_floor:
        names = [name for name in names if name != FLOOR]
    elif FLOOR not in names:
        names = [FLOOR, *names]
    rows = asyncio.run(_run(names, concurrencies, args.count, args.duration, not args.no_baseline))
    print(format_table(rows))
    if any(SCENARIOS[name].fresh_kdf for name in names):
        print(f"\nargon2id verification limit of this machine: {kdf_limit():.1f}/s")
    if args.json:
        args.json.write_text(json.dumps([row.as_dict() for row in rows], indent=1))
    return 0


async def _run(
    names: list[str], concurrencies: list[int], count: int, duration: float, baseline: bool
) -> list[Row]:
    identities = BenchIdentities.create()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="callout-bench-") as temp:
        scenarios = ([None] if baseline else []) + [SCENARIOS[name] for name in names]
        for index, scenario in enumerate(scenarios):
            rows += await run_scenario(
                Path(temp) / str(index),
                identities,
                scenario,
                concurrencies=concurrencies,
                count=count,
                duration=duration,
            )
    return rows


async def _storm(args: argparse.Namespace) -> int:
    names = args.scenario or ["password-cached"]
    scenario = SCENARIOS[names[0]]
    if len(names) != 1 or scenario.background is not None or scenario.floor:
        print("callout bench --storm: give one --scenario without background load", file=sys.stderr)
        return 2
    if args.users < 1:
        print("callout bench --storm: --users must be at least 1", file=sys.stderr)
        return 2
    if args.shared_state == "both" or args.nodes is not None:
        problem = "--shared-state is on or off; --nodes needs --replicas"
        print(f"callout bench --storm: {problem}", file=sys.stderr)
        return 2
    identities = BenchIdentities.create(args.users)
    credentials = scenario.credentials(identities)
    kdf = "callout_kdf_verifications_total"
    with tempfile.TemporaryDirectory(prefix="callout-storm-") as temp:
        stack = Stack(Path(temp), identities, scenario)
        stack.metrics_port = free_port()
        stack.shared_state = args.shared_state == "on"
        stack.start()
        before = [0.0]

        def restart() -> None:
            assert stack.server is not None  # noqa: S101 - started above
            if args.restart_service:
                stack.restart_service()
            before[0] = stack.metric(kdf)
            stack.server.stop()
            stack.server.start()

        try:
            result = await storm(
                "127.0.0.1", stack.port, credentials, clients=args.storm, restart_server=restart
            )
            verifications = stack.metric(kdf) - before[0]
        finally:
            stack.stop()
    report: dict[str, object] = {
        "scenario": scenario.name,
        "users": args.users,
        "service_restarted": args.restart_service,
        "shared_state": args.shared_state == "on",
        **result.as_dict(),
        "kdf_verifications": int(verifications),
    }
    print(json.dumps(report, indent=1))
    return 0 if result.reconnected == args.storm and result.auth_timeouts == 0 else 1


async def _attack(args: argparse.Namespace) -> int:
    counts = (args.attack, args.sources, args.honest, args.spray_concurrency)
    if min(counts) < 1 or args.sources > len(SOURCES) or args.spray < 0:
        print(
            "callout bench --attack: ATTACKERS, --honest and --spray-concurrency must be at least"
            " 1, --sources 1 to 8, --spray 0 or more",
            file=sys.stderr,
        )
        return 2
    plan = AttackPlan(
        attackers=args.attack,
        sources=args.sources,
        honest=args.honest,
        duration=args.duration,
        spray=args.spray,
        spray_kind=args.spray_kind,
        spray_concurrency=args.spray_concurrency,
    )
    with tempfile.TemporaryDirectory(prefix="callout-attack-") as temp:
        result = await run_attack(Path(temp), plan)
    print(format_attack(result))
    if args.json:
        args.json.write_text(json.dumps(result.as_dict(), indent=1))
    # A wrong password that gets in is a failure; the rates are reported, never judged here.
    allowed = result.attackers.outcomes[Outcome.ALLOWED] + result.spray.outcomes[Outcome.ALLOWED]
    return 1 if allowed else 0


def _replicas(args: argparse.Namespace) -> int:
    names = args.scenario or list(REPLICA_SCENARIOS)
    problems = [
        f"--scenario {n}: {why}" for n in names if (why := unfit_for_replicas(SCENARIOS[n]))
    ]
    if args.replicas is None:
        problems.append("--shared-state and --nodes need --replicas N")
    elif args.replicas < 1:
        problems.append(f"--replicas must be at least 1 (got {args.replicas})")
    if args.storm or args.attack is not None:
        problems.append("--replicas cannot be combined with --storm or --attack")
    concurrencies = _concurrencies(args.concurrency)
    if concurrencies is None:
        problems.append(
            "--concurrency must be positive integers separated by commas"
            f" (got {args.concurrency!r})"
        )
    if args.count < 1 or args.duration <= 0:
        problems.append("--count must be at least 1 and --duration more than 0")
    if problems or concurrencies is None:
        for problem in problems:
            print(f"callout bench --replicas: {problem}", file=sys.stderr)
        return 2
    modes = ["off", "on"] if args.shared_state in (None, "both") else [args.shared_state]
    # SIGTERM as Ctrl-C: unwinds through the same `finally` that stops every process by PID
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with tempfile.TemporaryDirectory(prefix="callout-replicas-") as temp:
            nodes = args.nodes or 1
            stack = ReplicaStack(Path(temp), BenchIdentities.create(), args.replicas, nodes)
            run = run_modes(
                stack,
                [SCENARIOS[name] for name in names],
                [MODES[mode] for mode in modes],
                concurrencies=concurrencies,
                count=args.count,
                duration=args.duration,
            )
            rows = asyncio.run(run)
    except (RuntimeError, TimeoutError) as error:  # a process that did not start: its log tail
        print(f"callout bench --replicas: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(format_replicas(rows, args.replicas, args.nodes or 1))
    if args.json:
        args.json.write_text(json.dumps([row.as_dict() for row in rows], indent=1))
    return 0


def _concurrencies(text: str) -> list[int] | None:
    try:
        values = [int(value) for value in text.split(",")]
    except ValueError:
        return None
    return values if values and min(values) >= 1 else None
