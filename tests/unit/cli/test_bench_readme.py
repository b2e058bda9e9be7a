"""The `callout bench` commands README "Performance" and "Running several replicas" show are
valid command lines.

A full run takes minutes, so they are parsed with the real argument parser here; the
scenarios themselves run at small scale in tests/faults (test_bench, test_storm,
test_bench_attack, test_bench_replicas)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from callout.cli import bench

README = Path(__file__).resolve().parents[3] / "README.md"


def _bench_commands(title: str = "Performance") -> list[str]:
    section = README.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [
        line.split("#", 1)[0].strip()
        for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
        for line in block.splitlines()
        if line.startswith(".venv/bin/callout bench")
    ]


def test_the_performance_section_shows_bench_commands_that_parse() -> None:
    parser = argparse.ArgumentParser(prog="callout")
    bench.register(parser.add_subparsers())
    commands = _bench_commands()
    assert any("--restart-service" in c for c in commands)
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])
        assert args.func is bench.bench_command, command


def test_the_replicas_section_shows_replica_mode_commands_that_parse() -> None:
    """The measurement README "Running several replicas" reports is one a reader can repeat."""
    parser = argparse.ArgumentParser(prog="callout")
    bench.register(parser.add_subparsers())
    commands = _bench_commands("Running several replicas")
    assert any("--replicas" in c for c in commands)
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])
        assert args.func is bench.bench_command, command
        assert args.replicas >= 1, command
