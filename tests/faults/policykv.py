"""A 3-node JetStream cluster with 3 replicas that take their policy from KV: what the policy
KV tests and the reach benchmark share."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callout.devserver.processes import free_port
from callout.devserver.service_process import ServiceProcess
from callout.protocol.nkeys import KeyPair
from tests.faults.cluster import Cluster
from tests.integration.httpget import http_get

REACH_BOUND = 1.0  # seconds from a push's return to every replica running it
KV = {"replicas": 3, "check_interval": 1.0, "initial_wait": 5.0}

_POLICY = """\
version: 1
defaults: {{account: APP, expiry: 1h}}
roles:
  app:
    publish: {{allow: ["app.>"]}}
    subscribe: {{allow: ["app.>", "_INBOX.>"]}}
users:
{users}
"""


def policy_dir(directory: Path, *keys: KeyPair) -> Path:
    users = "".join(
        f"  sensor{index}:\n    nkey: {key.public_key}\n    roles: [app]\n"
        for index, key in enumerate(keys)
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.yaml").write_text(_POLICY.format(users=users), encoding="utf-8")
    return directory


@dataclass
class Replica:
    process: ServiceProcess
    http_port: int

    async def readyz(self) -> dict[str, Any]:
        _, body = await http_get(self.http_port, "/readyz")
        answer: dict[str, Any] = json.loads(body)
        return answer

    async def metric(self, name: str) -> float:
        _, body = await http_get(self.http_port, "/metrics")
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not exported")


@dataclass
class Deployment:
    cluster: Cluster
    replicas: list[Replica]
    config: Path  # a replica's settings: what the CLI reads for bucket, servers and login

    def cli(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "callout", "policy", *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    def push(self, directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("push", directory, "--config", self.config, "--by", "tests", *extra)

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.cluster.nodes]

    async def push_and_wait(self, directory: Path) -> int:
        """Push ``directory``; its revision, once every replica runs it (the first push makes
        the bucket: replicas find it on their next retry, within ``check_interval``)."""
        revision = pushed_revision(self.push(directory))
        await self.wait_for_revision(revision, REACH_BOUND + KV["check_interval"])
        return revision

    async def revisions(self) -> list[int]:
        return [(await r.readyz())["policy"]["revision"] for r in self.replicas]

    async def wait_for_revision(self, revision: int, bound: float) -> float:
        """Seconds until every replica runs ``revision``; fails past ``bound``."""
        started = time.monotonic()
        while time.monotonic() - started <= bound:
            if await self.revisions() == [revision] * len(self.replicas):
                return time.monotonic() - started
            await asyncio.sleep(0.02)
        raise AssertionError(f"revisions {await self.revisions()} != {revision} after {bound}s")


def pushed_revision(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split("pushed revision ", 1)[1].split()[0])


@contextmanager
def started_deployment(tmp_path: Path, unused: Path) -> Iterator[Deployment]:
    """3 JetStream nodes and 3 replicas with ``policy.source: kv`` (each on its own node
    first, then the others); stopped by PID on the way out, whatever happened."""
    cluster = Cluster.start(tmp_path, unused, jetstream=True)
    try:
        urls = [f"nats://127.0.0.1:{node.port}" for node in cluster.nodes]
        replicas = []
        for index in range(3):
            port = free_port()
            nats_settings = {
                "servers": urls[index:] + urls[:index],
                "user": "auth",
                "password_file": cluster.nodes[index].setup.password_file,
                "reconnect_wait": 0.25,
            }
            process = cluster.add_replica(
                index,
                f"replica-{index}",
                nats=nats_settings,
                policy={"directory": unused, "source": "kv", "kv": KV},
                http={"enabled": True, "port": port},
            )
            replicas.append(Replica(process, port))
        yield Deployment(cluster, replicas, tmp_path / "replica-0.yaml")
    finally:
        cluster.stop()
