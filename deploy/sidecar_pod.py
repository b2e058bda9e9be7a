"""Wrap the NATS-chart values' sidecar in a minimal Pod, for offline schema validation.

CI cannot download the official chart, so it cannot render it. This script does, for the
parts that values-callout.yaml adds, what the chart does with them: it starts from a pod like
the chart's (a `nats` container with `container.env`, the `config` volume,
`shareProcessNamespace`), applies `podTemplate.merge` and the `podTemplate.patch` JSON-patch
`add` operations, and prints that Pod followed by `extraResources`, as YAML documents on
stdout for `kubernetes-validate --strict`. It also checks what schema validation cannot:
every volume mount names a volume of the pod.

    python deploy/sidecar_pod.py deploy/nats-chart/values-callout.yaml | kubernetes-validate ...
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml


class SidecarError(Exception):
    """The values file does not produce a consistent pod."""


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Helm's `merge` for our purposes: maps merge recursively, anything else is replaced."""
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _add(document: dict[str, Any], path: str, value: Any) -> None:
    """RFC 6902 ``add``: the only operation values-callout.yaml uses."""
    parts = [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]
    if not parts:
        raise SidecarError(f"patch path {path!r} names the whole document")
    parent: Any = document
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(copy.deepcopy(value))
        else:
            parent.insert(int(last), copy.deepcopy(value))
    else:
        parent[last] = copy.deepcopy(value)


def _env_list(env: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart's ``container.env`` map (name -> value or {valueFrom}) as a container env."""
    items: list[dict[str, Any]] = []
    for name, value in env.items():
        if isinstance(value, dict):
            items.append({"name": name, **value})
        else:
            items.append({"name": name, "value": str(value)})
    return items


def pod_template(values: dict[str, Any]) -> dict[str, Any]:
    """The pod template as the chart would render it with these values (the relevant parts)."""
    nats = {
        "name": "nats",
        "image": "nats:2.11-alpine",
        "args": ["--config", "/etc/nats-config/nats.conf"],
        "ports": [{"name": "nats", "containerPort": 4222}],
        "env": _env_list(values.get("container", {}).get("env", {})),
        "volumeMounts": [{"name": "config", "mountPath": "/etc/nats-config"}],
    }
    template: dict[str, Any] = {
        "metadata": {"labels": {"app.kubernetes.io/name": "nats"}},
        "spec": {
            "containers": [nats],
            "shareProcessNamespace": True,
            "volumes": [{"name": "config", "configMap": {"name": "nats-config"}}],
        },
    }
    settings = values.get("podTemplate", {})
    template = _merge(template, settings.get("merge", {}))
    for operation in settings.get("patch", []):
        if operation.get("op") != "add":
            raise SidecarError(f"unsupported patch operation {operation.get('op')!r}")
        _add(template, operation["path"], operation["value"])
    _check_mounts(template["spec"])
    return template


def _check_mounts(spec: dict[str, Any]) -> None:
    volumes = {volume["name"] for volume in spec.get("volumes", [])}
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                raise SidecarError(
                    f"container {container['name']!r} mounts {mount['name']!r}, "
                    "which is not a volume of the pod"
                )


def documents(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The validation Pod, then every ``extraResources`` manifest."""
    template = pod_template(values)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nats-0", **template["metadata"]},
        "spec": template["spec"],
    }
    return [pod, *values.get("extraResources", [])]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: sidecar_pod.py VALUES_FILE", file=sys.stderr)  # noqa: T201 - a CLI
        return 2
    values = yaml.safe_load(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        output = yaml.safe_dump_all(documents(values), sort_keys=False)
    except SidecarError as error:
        print(f"sidecar_pod.py: {argv[0]}: {error}", file=sys.stderr)  # noqa: T201 - a CLI
        return 1
    sys.stdout.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
