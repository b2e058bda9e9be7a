"""A 3-node nats-server cluster (routes on loopback) with auth callout on every node, and
service replicas (`callout.devserver.service_process`) attached to chosen nodes."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.devserver.service_process import ServiceProcess, write_settings


@dataclass
class Node:
    setup: ConfigModeSetup
    server: NatsServer
    monitor_port: int

    @property
    def port(self) -> int:
        return self.setup.port

    def routes(self) -> int:
        url = f"http://127.0.0.1:{self.monitor_port}/routez"
        with urllib.request.urlopen(url, timeout=2) as reply:
            count: int = json.load(reply)["num_routes"]
            return count


@dataclass
class Cluster:
    directory: Path
    policy_dir: Path
    nodes: list[Node] = field(default_factory=list)
    replicas: list[ServiceProcess] = field(default_factory=list)

    # with jetstream: JetStream on every node (a meta group of ``size``), enabled for the
    # callout account; with system_user: a SYS account and that user (live sessions)
    jetstream: bool = False
    system_user: str | None = None

    @classmethod
    def start(
        cls,
        directory: Path,
        policy_dir: Path,
        size: int = 3,
        *,
        jetstream: bool = False,
        system_user: str | None = None,
    ) -> Cluster:
        cluster = cls(directory, policy_dir, jetstream=jetstream, system_user=system_user)
        try:
            cluster._start_nodes(size)
        except BaseException:
            cluster.stop()  # a node that failed to start must not leak the ones before it
            raise
        return cluster

    def _start_nodes(self, size: int) -> None:
        directory = self.directory
        route_ports = [free_port() for _ in range(size)]
        routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in route_ports)
        first: ConfigModeSetup | None = None
        for index in range(size):
            monitor = free_port()
            extra = (
                f"http: 127.0.0.1:{monitor}\n"
                f"cluster {{\n  name: callout_faults\n  listen: 127.0.0.1:{route_ports[index]}\n"
                f"  routes: [{routes}]\n}}"
            )
            shared = {} if first is None else {
                "issuer": first.issuer,
                "xkey": first.xkey,
                "auth_password": first.auth_password,
                "nonce_user": first.nonce_user,
                "system_password": first.system_password,
            }  # fmt: skip
            setup = ConfigModeSetup(
                directory / f"n{index}",
                free_port(),
                server_name=f"n{index}",
                extra_config=extra,
                jetstream=self.jetstream,
                system_user=self.system_user,
                **shared,  # type: ignore[arg-type]
            ).write()
            first = first or setup
            server = NatsServer(setup.config_file, setup.port)
            self.nodes.append(Node(setup, server, monitor))
            server.start()
        self.wait_for_routes(size - 1, 15.0)

    def wait_for_routes(self, expected: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(node.routes() >= expected for node in self.nodes if node.server.process):
                return
            time.sleep(0.1)
        raise TimeoutError("cluster routes did not form")

    def add_replica(self, node: int, name: str, **overrides: Any) -> ServiceProcess:
        values: dict[str, Any] = {"nats": {
            "servers": [f"nats://127.0.0.1:{self.nodes[node].port}"],
            "user": "auth",
            "password_file": self.nodes[node].setup.password_file,
            "reconnect_wait": 0.25,
        }}  # fmt: skip
        settings = self.nodes[node].setup.settings(self.policy_dir, **(values | overrides))
        config = write_settings(settings, self.directory / f"{name}.yaml")
        replica = ServiceProcess(config, self.directory / f"{name}.log")
        replica.start()
        replica.wait_for("service_ready", 20.0)
        self.replicas.append(replica)
        return replica

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()
        for node in self.nodes:
            node.server.stop()
