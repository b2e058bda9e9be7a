"""podman for the image tests: run containers from a pod spec's container, as a kubelet would.

Every container is named by the test and removed in the fixture that made it, even when the
test fails. The runtime settings come from deploy/image/containers.conf (runc, no default
ulimits), the same file `make image` builds with.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import ROOT
from tests.logins import json_events

CONTAINERS_CONF = ROOT / "deploy" / "image" / "containers.conf"
MINUTE = 60.0


def podman_binary() -> str:
    """podman from PATH; a missing podman fails under CI=true and skips elsewhere."""
    found = shutil.which("podman")
    if found:
        return found
    message = "podman not found: apt-get install podman buildah runc (see .ci/system-deps)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def podman(*args: str, timeout: float = MINUTE, check: bool = True, stderr: bool = False) -> str:
    """Run ``podman ARGS``; its stdout (and stderr after it with ``stderr=True``, which
    `podman logs` needs: it replays the container's stderr there). A failure shows stderr."""
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    result = subprocess.run(
        [podman_binary(), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=env,
    )
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
    return result.stdout + result.stderr if stderr else result.stdout


def image_config(image: str) -> dict[str, Any]:
    """`podman image inspect` of ``image``: its config (User, Labels, Entrypoint, ...)."""
    data: list[dict[str, Any]] = json.loads(podman("image", "inspect", image))
    config: dict[str, Any] = data[0]["Config"]
    return config


def volume_arguments(spec: dict[str, Any], container: dict[str, Any], root: Path) -> list[str]:
    """podman flags for the container's volumes, laid out under ``root`` (tests.deploy's
    ``lay_out``): ConfigMaps and Secrets as read-only bind mounts, emptyDirs as tmpfs."""
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    flags: list[str] = []
    for mount in container.get("volumeMounts", []):
        path = mount["mountPath"]
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit", "16Mi").replace("Mi", "m")
            flags += ["--tmpfs", f"{path}:rw,size={size},mode=1777"]
        else:
            mode = "ro" if mount.get("readOnly") else "rw"
            flags += ["--volume", f"{root / path.lstrip('/')}:{path}:{mode}"]
    return flags


def security_arguments(container: dict[str, Any]) -> list[str]:
    """podman flags for the container's securityContext (the parts podman can apply)."""
    context = container.get("securityContext", {})
    flags = [f"--user={context['runAsUser']}:{context['runAsGroup']}"]
    if context.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    for capability in context.get("capabilities", {}).get("drop", []):
        flags.append(f"--cap-drop={capability}")
    return flags


class Container:
    """A podman container by name: ``Container.run(...)`` starts one; ``remove()`` always
    runs (fixtures call it)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def run(cls, name: str, image: str, flags: list[str], args: list[str]) -> Container:
        """``podman run --detach`` on the host network."""
        podman("rm", "--force", "--ignore", name)
        podman("run", "--detach", "--name", name, "--network", "host", *flags, image, *args)
        return cls(name)

    def running(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.strip() == "true"

    def logs(self) -> str:
        return podman("logs", self.name, check=False, timeout=30, stderr=True)

    def exit_logs(self) -> str:
        """The logs of an exited container: `podman logs` can lag `podman wait` a moment."""
        deadline = time.monotonic() + 5.0
        while not (text := self.logs()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return text

    def events(self) -> list[dict[str, Any]]:
        """The service's JSON log lines so far."""
        return json_events(self.logs())

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM, as the kubelet sends it; the exit code, or None if still running after
        ``timeout`` seconds."""
        podman("kill", "--signal", "TERM", self.name)
        try:
            code = podman("wait", self.name, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return int(code.strip())

    def remove(self) -> None:
        podman("rm", "--force", "--ignore", "--time", "0", self.name, check=False)
