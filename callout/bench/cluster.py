"""The nats-servers of `callout bench --replicas`: one, or a cluster of 3 (routes on 127.0.0.1)
with JetStream on every node, auth callout on every node with the same keys."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port


@dataclass
class Node:
    setup: ConfigModeSetup
    server: NatsServer
    monitor_port: int

    def monitor(self, path: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.monitor_port}/{path}"
        with urllib.request.urlopen(url, timeout=2) as reply:
            answer: dict[str, Any] = json.load(reply)
            return answer


@dataclass
class Nodes:
    """``size`` nats-servers with JetStream (a cluster when more than one), started in order;
    `start` is back when every route is up and JetStream has a meta leader."""

    directory: Path
    size: int = 1
    nodes: list[Node] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [node.setup.port for node in self.nodes]

    @property
    def pids(self) -> dict[str, int]:
        return {
            f"nats-server-{n}" if self.size > 1 else "nats-server": node.server.process.pid
            for n, node in enumerate(self.nodes, 1)
            if node.server.process is not None
        }

    def start(self, timeout: float = 30.0) -> None:
        routes = [free_port() for _ in range(self.size)]
        first: ConfigModeSetup | None = None
        for index in range(self.size):
            monitor = free_port()
            extra = f"http: 127.0.0.1:{monitor}\n"
            if self.size > 1:
                listed = ", ".join(f"nats-route://127.0.0.1:{port}" for port in routes)
                extra += (
                    f"cluster {{\n  name: callout_bench\n  listen: 127.0.0.1:{routes[index]}\n"
                    f"  routes: [{listed}]\n}}\n"
                )
            # every node accepts the same service user and trusts the same issuer
            same: dict[str, Any] = {} if first is None else {
                "issuer": first.issuer,
                "xkey": first.xkey,
                "auth_password": first.auth_password,
                "nonce_user": first.nonce_user,
            }  # fmt: skip
            setup = ConfigModeSetup(
                self.directory / f"node-{index + 1}",
                free_port(),
                server_name=f"bench_{index + 1}",
                extra_config=extra,
                jetstream=True,
                **same,
            ).write()
            first = first or setup
            node = Node(setup, NatsServer(setup.config_file, setup.port), monitor)
            self.nodes.append(node)
            node.server.start()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ready(node) for node in self.nodes):
                return
            time.sleep(0.2)
        raise TimeoutError(f"the {self.size} nats-servers' routes or JetStream not ready")

    def _ready(self, node: Node) -> bool:
        try:
            routes = node.monitor("routez")["num_routes"]
            leader = node.monitor("jsz").get("meta_cluster", {}).get("leader")
        except (OSError, ValueError):
            return False
        return routes >= self.size - 1 and (self.size == 1 or bool(leader))

    def stop(self) -> None:
        for node in self.nodes:
            node.server.stop()
