"""The deploy examples start the real service against a real nats-server, as shipped.

Each set-up takes the container's arguments, environment, settings, policy and secret file
modes from the manifests as rendered (`kubectl kustomize`, the NATS-chart values), and the
server config from deploy/ (config-mode.conf, the values' `config.merge`). Only the filesystem
root, ports, the NATS URL and freshly generated keys are substituted, so a manifest that drifts
from the code fails here.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest

from callout.devserver.processes import NatsServer, free_port
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole
from callout.settings import Settings
from tests.deploy import manifests
from tests.deploy.manifests import DEMO_PASSWORD, DEMO_USER, SERVER_CONFIG, Pod
from tests.logins import connect, http_status, json_events

pytestmark = pytest.mark.integration

STARTUP_TIMEOUT = 20.0
HAS_HTTP = "http" in Settings.model_fields


@dataclass
class Keys:
    """What an operator puts into Secret nats-auth-callout-keys (deploy/README.md)."""

    issuer: KeyPair = field(default_factory=lambda: KeyPair.generate(KeyRole.ACCOUNT))
    xkey: CurveKeyPair = field(default_factory=CurveKeyPair.generate)
    password: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)

    def secret(self) -> dict[str, str]:
        # Seeds come from `callout keys generate` files (trailing newline); the password from
        # --from-literal (none).
        return {
            "issuer.nk": self.issuer.seed + "\n",
            "xkey.nk": self.xkey.seed + "\n",
            "nats-password": self.password,
        }


def _substitute(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert text.count(old) == 1, f"expected {old!r} exactly once in the example"
        text = text.replace(old, new)
    return text


def config_mode_server(keys: Keys, port: int) -> str:
    """deploy/server-config/config-mode.conf with the operator's substitutions made."""
    return _substitute(
        (SERVER_CONFIG / "config-mode.conf").read_text(encoding="utf-8"),
        {
            "REPLACE_ME_ISSUER_ACCOUNT_PUBLIC_KEY": keys.issuer.public_key,
            "REPLACE_ME_XKEY_PUBLIC_KEY": keys.xkey.public_key,
            "port: 4222": f"listen: 127.0.0.1:{port}",
            "http_port: 8222": "",
        },
    )


def sidecar_server(keys: Keys, port: int) -> str:
    """The nats.conf the chart renders from values-callout.yaml, keys substituted."""
    text = manifests.chart_server_config(manifests.chart_values(), f"127.0.0.1:{port}")
    return _substitute(
        text,
        {
            "REPLACE_ME_ISSUER_ACCOUNT_PUBLIC_KEY": keys.issuer.public_key,
            "REPLACE_ME_XKEY_PUBLIC_KEY": keys.xkey.public_key,
        },
    )


class Service:
    """`python -m callout` with the container's args and env, logging JSON to a file."""

    def __init__(self, pod: Pod, pod_name: str, log_file: Path) -> None:
        self.pod = pod
        self.log_file = log_file
        env = {"PATH": os.environ.get("PATH", ""), **manifests.container_env(pod, pod_name)}
        with log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "callout", *pod.argv()],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=pod.root,
            )

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines so far."""
        return json_events(self.log_file.read_text(errors="replace"))

    def wait_for(self, event: str, timeout: float = STARTUP_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.events():
                if item.get("event") == event:
                    return item
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(
            f"no {event!r} from the service (exit code {self.process.poll()}):\n"
            + self.log_file.read_text(errors="replace")
        )

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, as the kubelet sends it; the exit code, or None if it did not exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def _wait_http(port: int, path: str, expected: int, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last: int | str = "no answer"
    while time.monotonic() < deadline:
        last = http_status(port, path)
        if last == expected:
            return
        time.sleep(0.1)
    pytest.fail(f"GET {path}: wanted {expected}, last got {last}")


async def _assert_demo_login(url: str) -> None:
    """The example user lands in APP with the example role's grants; a wrong password does not."""
    nc = await connect(url, user=DEMO_USER, password=DEMO_PASSWORD)
    try:
        reply = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=2)
    finally:
        await nc.close()
    info = json.loads(reply.data)["data"]
    assert info["account"] == "APP"
    assert info["user"] == DEMO_USER
    assert "demo.>" in info["permissions"]["publish"]["allow"]
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect(url, user=DEMO_USER, password="wrong")


CONFIG_PATH = "/etc/callout/config/callout.yaml"


def deployment_pod(root: Path, keys: Keys) -> Pod:
    """The example overlay's container, its volumes filled from the rendered ConfigMaps."""
    documents = manifests.render(manifests.OVERLAY)
    spec = manifests.deployment_pod_spec(documents)
    configmaps = manifests.config_maps(documents)
    return manifests.lay_out(root, spec, "auth-callout", configmaps, keys.secret())


def sidecar_pod(root: Path, keys: Keys) -> Pod:
    """The chart values' sidecar; its policy ConfigMap made from the example policy files."""
    configmaps = {
        "nats-auth-callout-settings": manifests.sidecar_settings_data(),
        "nats-auth-callout-policy": manifests.policy_config_map_data(),
    }
    spec = manifests.sidecar_pod_spec()
    return manifests.lay_out(root, spec, "auth-callout", configmaps, keys.secret())


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def nats_env(keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The nats container's environment: the auth user's password from the Secret."""
    monkeypatch.setenv("NATS_AUTH_PASSWORD", keys.password)
    monkeypatch.setenv("SYS_PASSWORD", secrets.token_hex(16))


async def test_deployment_example_serves_logins(tmp_path: Path, keys: Keys, nats_env: None) -> None:
    """The example overlay's settings, policy and container spec work with config-mode.conf."""
    pod = deployment_pod(tmp_path / "pod", keys)
    port, http_port = free_port(), free_port()
    manifests.localize_settings(pod, pod.path(CONFIG_PATH), f"nats://127.0.0.1:{port}", http_port)
    conf = tmp_path / "nats-server.conf"
    conf.write_text(config_mode_server(keys, port), encoding="utf-8")
    with NatsServer(conf, port) as server:
        service = Service(pod, "nats-auth-callout-7d9f8-x2x4q", tmp_path / "service.log")
        try:
            ready = service.wait_for("service_ready")
            assert ready["queue"] == "auth-callout"
            if HAS_HTTP:
                _wait_http(http_port, "/livez", 200)
                _wait_http(http_port, "/readyz", 200)
            await _assert_demo_login(server.url)
            assert service.stop() == 0, service.log()
        finally:
            service.kill()


async def test_sidecar_example_starts_before_its_server_and_serves_logins(
    tmp_path: Path, keys: Keys, nats_env: None
) -> None:
    """Native-sidecar order: the callout starts first and stays up while nats-server is not
    running (its startup probe is /livez only), then connects and serves the chart's config;
    it is stopped after the server, as Kubernetes stops native sidecars."""
    pod = sidecar_pod(tmp_path / "pod", keys)
    port, http_port = free_port(), free_port()
    manifests.localize_settings(pod, pod.path(CONFIG_PATH), f"nats://127.0.0.1:{port}", http_port)
    conf = tmp_path / "nats-server.conf"
    conf.write_text(sidecar_server(keys, port), encoding="utf-8")
    service = Service(pod, "nats-0", tmp_path / "service.log")
    try:
        service.wait_for("service_starting")  # settings, policy and keys loaded
        await asyncio.sleep(1.0)
        assert service.process.poll() is None, f"the sidecar must wait for nats:\n{service.log()}"
        if HAS_HTTP:
            _wait_http(http_port, "/livez", 200)
            assert http_status(http_port, "/readyz") == 503
        with NatsServer(conf, port) as server:
            service.wait_for("service_ready")
            if HAS_HTTP:
                _wait_http(http_port, "/readyz", 200)
            await _assert_demo_login(server.url)
        assert service.stop() == 0, service.log()
    finally:
        service.kill()


def test_sidecar_whose_server_never_came_up_stops_on_sigterm(tmp_path: Path, keys: Keys) -> None:
    """A pod deleted while its nats-server never started must not hang for the grace period."""
    pod = sidecar_pod(tmp_path / "pod", keys)
    unused = f"nats://127.0.0.1:{free_port()}"
    manifests.localize_settings(pod, pod.path(CONFIG_PATH), unused, free_port())
    service = Service(pod, "nats-0", tmp_path / "service.log")
    try:
        service.wait_for("service_starting")
        time.sleep(0.5)
        assert service.stop(timeout=5.0) == 0, service.log()
    finally:
        service.kill()


def _info(port: int) -> dict[str, Any]:
    """The INFO a client gets on connecting (before it sends anything)."""
    import socket  # noqa: PLC0415 - only this check reads the raw protocol

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        line = sock.makefile("rb").readline(65536)
    assert line.startswith(b"INFO "), line[:20]
    info: dict[str, Any] = json.loads(line[5:])
    return info


@pytest.mark.parametrize("example", ["config-mode.conf", "values-callout.yaml"])
def test_shipped_server_configs_send_nkey_clients_a_nonce(
    tmp_path: Path, keys: Keys, nats_env: None, example: str
) -> None:
    """Without a nonce in INFO nkey clients send no key at all and never log in; the shipped
    configs carry a placeholder nkey user so that the server sends one."""
    port = free_port()
    conf = tmp_path / "nats-server.conf"
    text = config_mode_server(keys, port) if example.endswith(".conf") else None
    conf.write_text(text or sidecar_server(keys, port), encoding="utf-8")
    with NatsServer(conf, port):
        assert _info(port).get("nonce")
