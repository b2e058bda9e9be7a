"""The deploy manifests agree with each other, with the Dockerfile and with the service.

Schema validity is deploy/check.sh's job (kubernetes-validate); these tests pin what a schema
cannot see: names that must match across files, and the operational rules of deploy/README.md.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from callout import __version__
from callout.devserver.processes import find_nats_server
from callout.service.buckets import MEMORY_PER_ENTRY
from callout.service.throttlekeys import FAILING_TRACKED
from callout.settings import Settings, ThrottleSettings, parse_duration
from tests.deploy import manifests
from tests.deploy.manifests import ROOT, SECRET_KEYS, SERVER_CONFIG
from tests.vectors import vectors_dir

MIB = 1024 * 1024
# deploy/README.md "Sizing": memory limit >= 64 MiB + 20 MiB x password_workers + the throttle's
# ceiling (measured: 62 MiB start-up peak, 19 MiB per argon2id verification in flight; the
# throttle's four tables at most max_tracked entries of MEMORY_PER_ENTRY bytes each, and its
# failing addresses at most FAILING_TRACKED).
BASE_MEMORY_MIB = 64
WORKER_MEMORY_MIB = 20
THROTTLE_TABLES = 4
CALLOUT_UID = 10001
# The official chart's default terminationGracePeriodSeconds (values-callout.yaml keeps it).
CHART_GRACE_SECONDS = 60


def _quantity(value: str | int) -> float:
    """A Kubernetes quantity (``160Mi``, ``500m``, ``2``) as a number of bytes or cores."""
    text = str(value)
    units = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB, "m": 0.001}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def _settings(text: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(text)
    return data


class Workload:
    """One way of running the callout: its pod spec, container and settings."""

    def __init__(self, name: str, spec: dict[str, Any], settings_text: str) -> None:
        self.name = name
        self.spec = spec
        self.container = manifests.container(spec, "auth-callout")
        self.settings = _settings(settings_text)
        self.settings_text = settings_text

    def __repr__(self) -> str:
        return self.name


def _deployment() -> Workload:
    documents = manifests.render(manifests.OVERLAY)
    settings = manifests.find(documents, "ConfigMap", "nats-auth-callout-settings")
    return Workload(
        "deployment", manifests.deployment_pod_spec(documents), settings["data"]["callout.yaml"]
    )


def _sidecar() -> Workload:
    return Workload(
        "sidecar", manifests.sidecar_pod_spec(), manifests.sidecar_settings_data()["callout.yaml"]
    )


@pytest.fixture(params=["deployment", "sidecar"])
def workload(request: pytest.FixtureRequest) -> Workload:
    return _deployment() if request.param == "deployment" else _sidecar()


def _mount(workload: Workload, path: str) -> dict[str, Any]:
    found = [m for m in workload.container["volumeMounts"] if m["mountPath"] == path]
    assert len(found) == 1, f"{workload}: no single volume mounted at {path}"
    return found[0]


def _volume(workload: Workload, name: str) -> dict[str, Any]:
    return manifests.mount_sources(workload.spec)[name]


def test_no_volume_is_mounted_with_subpath(workload: Workload) -> None:
    """subPath mounts never see ConfigMap or Secret updates, so hot reload would silently stop."""
    for container in workload.spec.get("initContainers", []) + workload.spec["containers"]:
        for mount in container.get("volumeMounts", []):
            assert "subPath" not in mount, f"{workload}: {container['name']} {mount['name']}"


def test_policy_is_a_read_only_configmap_directory(workload: Workload) -> None:
    """The service watches the policy directory; it must be the mounted ConfigMap itself."""
    mount = _mount(workload, workload.settings["policy"]["directory"])
    assert mount.get("readOnly") is True
    name = _volume(workload, mount["name"])["configMap"]["name"]
    assert re.fullmatch(r"nats-auth-callout-policy(-[a-z0-9]{10})?", name), name


def test_secrets_are_files_of_the_key_secret_with_mode_0400(workload: Workload) -> None:
    """Seeds and the NATS password reach the service only as 0400 files, never as env."""
    paths = [
        workload.settings["keys"]["issuer_seed_file"],
        workload.settings["keys"]["xkey_seed_file"],
        workload.settings["nats"]["password_file"],
    ]
    for path in paths:
        directory, key = path.rsplit("/", 1)
        assert key in SECRET_KEYS
        volume = _volume(workload, _mount(workload, directory)["name"])
        assert volume["secret"]["secretName"] == "nats-auth-callout-keys"
        assert volume["secret"]["defaultMode"] == 0o400
    for item in workload.container.get("env", []):
        assert "secretKeyRef" not in item.get("valueFrom", {}), item["name"]


def test_container_is_locked_down(workload: Workload) -> None:
    """Non-root by number, read-only root, no privilege escalation, no capabilities, seccomp."""
    context = workload.container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == CALLOUT_UID
    assert context["runAsGroup"] == CALLOUT_UID
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert workload.spec["securityContext"]["fsGroup"] == CALLOUT_UID  # secrets readable


def _port(workload: Workload, name: str) -> int:
    ports = {port["name"]: port["containerPort"] for port in workload.container["ports"]}
    assert name in ports, f"{workload}: probe port {name} is not a container port"
    return ports[name]


def test_probes_use_the_http_section_port_and_paths(workload: Workload) -> None:
    """Startup and liveness ask /livez only (a NATS outage must not restart the pod); readiness
    asks /readyz every ~5 s; all on the port the settings' `http` section opens."""
    container = workload.container
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["startupProbe"]["path"] == "/livez"
    assert probes["livenessProbe"]["path"] == "/livez"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert container["readinessProbe"]["periodSeconds"] == 5
    for probe in probes.values():
        assert _port(workload, probe["port"]) == workload.settings["http"]["port"]
    assert workload.settings["http"]["host"] == "0.0.0.0"  # noqa: S104 - the kubelet probes the pod IP


def test_native_sidecar_starts_before_nats() -> None:
    """An init container with restartPolicy Always (Kubernetes >= 1.29) starts first, stops last."""
    sidecar = _sidecar()
    assert sidecar.container["restartPolicy"] == "Always"
    assert sidecar.container in sidecar.spec["initContainers"]


def test_resources_fit_the_password_workers(workload: Workload) -> None:
    """password_workers is explicit (the default, os.cpu_count(), sees the node's CPUs) and the
    memory limit follows the documented rule, the throttle's ceiling under a spray included."""
    workers = workload.settings["service"]["password_workers"]
    tracked = workload.settings.get("throttle", {}).get(
        "max_tracked", ThrottleSettings().max_tracked
    )
    resources = workload.container["resources"]
    memory = _quantity(resources["limits"]["memory"])
    failing = min(tracked, FAILING_TRACKED)
    throttle = (THROTTLE_TABLES * tracked + failing) * MEMORY_PER_ENTRY
    assert memory >= (BASE_MEMORY_MIB + WORKER_MEMORY_MIB * workers) * MIB + throttle
    assert _quantity(resources["limits"]["cpu"]) == workers
    assert _quantity(resources["requests"]["memory"]) <= memory


def test_grace_period_covers_the_drain() -> None:
    """Shutdown waits up to drain_timeout for in-flight work and again for the NATS drain."""
    deployment = _deployment()
    drain = parse_duration(deployment.settings["service"]["drain_timeout"])
    assert deployment.spec["terminationGracePeriodSeconds"] > 2 * drain
    sidecar_drain = parse_duration(_sidecar().settings["service"]["drain_timeout"])
    assert 2 * sidecar_drain < CHART_GRACE_SECONDS


def test_deployment_survives_a_node_drain() -> None:
    """Two replicas, a PDB that keeps one, and rollouts that never go below the replica count."""
    documents = manifests.render(manifests.OVERLAY)
    deployment = manifests.find(documents, "Deployment", "nats-auth-callout")["spec"]
    assert deployment["replicas"] >= 2
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = manifests.find(documents, "PodDisruptionBudget", "nats-auth-callout")["spec"]
    assert budget["minAvailable"] >= 1
    assert budget["minAvailable"] < deployment["replicas"]


def test_selectors_match_the_deployment_pods() -> None:
    """The Service, PDB and NetworkPolicy all select the Deployment's pods."""
    documents = manifests.render(manifests.OVERLAY)
    deployment = manifests.find(documents, "Deployment", "nats-auth-callout")["spec"]
    labels = deployment["template"]["metadata"]["labels"]
    selectors = [
        deployment["selector"]["matchLabels"],
        manifests.find(documents, "Service", "nats-auth-callout-metrics")["spec"]["selector"],
        manifests.find(documents, "PodDisruptionBudget", "nats-auth-callout")["spec"]["selector"][
            "matchLabels"
        ],
        manifests.find(documents, "NetworkPolicy", "nats-auth-callout")["spec"]["podSelector"][
            "matchLabels"
        ],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()
    service = manifests.find(documents, "Service", "nats-auth-callout-metrics")["spec"]
    _port(_deployment(), service["ports"][0]["targetPort"])


def test_network_policy_allows_only_dns_nats_ldap_and_the_idp() -> None:
    """Egress to DNS, NATS, LDAP and HTTPS only; ingress to the HTTP port only."""
    documents = manifests.render(manifests.OVERLAY)
    policy = manifests.find(documents, "NetworkPolicy", "nats-auth-callout")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress_ports == {53, 4222, 389, 636, 443}
    assert all(rule["to"] for rule in policy["egress"]), "an egress rule without peers allows all"
    ingress_ports = {port["port"] for rule in policy["ingress"] for port in rule["ports"]}
    assert ingress_ports == {"http"}


def test_pod_monitors_scrape_the_callout_ports() -> None:
    """Each PodMonitor selects pods that carry its port name, in the namespace they run in."""
    monitors = {
        doc["metadata"]["name"]: doc["spec"]
        for doc in yaml.safe_load_all(
            (manifests.DEPLOY / "monitoring" / "podmonitor.yaml").read_text(encoding="utf-8")
        )
        if doc
    }
    documents = manifests.render(manifests.OVERLAY)
    namespace = manifests.find(documents, "Namespace", "nats-auth-callout")["metadata"]["name"]
    deployment_labels = manifests.find(documents, "Deployment", "nats-auth-callout")["spec"][
        "template"
    ]["metadata"]["labels"]
    cases = [
        (monitors["nats-auth-callout"], _deployment(), deployment_labels, namespace),
        (
            monitors["nats-auth-callout-sidecar"],
            _sidecar(),
            {"app.kubernetes.io/name": "nats"},
            "nats",
        ),
    ]
    for monitor, workload, labels, expected_namespace in cases:
        assert monitor["selector"]["matchLabels"].items() <= labels.items()
        assert monitor["namespaceSelector"]["matchNames"] == [expected_namespace]
        for endpoint in monitor["podMetricsEndpoints"]:
            assert _port(workload, endpoint["port"]) == workload.settings["http"]["port"]
            assert endpoint["path"] == "/metrics"


def test_chart_config_defines_the_callout_login_and_target_accounts() -> None:
    """The service's user is an auth_user of the callout account; its target accounts exist."""
    merge = manifests.chart_values()["config"]["merge"]
    settings = _sidecar().settings
    callout = merge["authorization"]["auth_callout"]
    user = settings["nats"]["user"]
    assert user in callout["auth_users"]
    assert user in [u.get("user") for u in merge["accounts"][callout["account"]]["users"]]
    assert set(settings["accounts"]) <= set(merge["accounts"])
    env = manifests.chart_values()["container"]["env"]
    password_ref = merge["accounts"][callout["account"]]["users"][0]["password"]
    variable = re.fullmatch(r"<< \$(\w+) >>", password_ref)
    assert variable is not None, "the password must come from the environment"
    secret = env[variable.group(1)]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "nats-auth-callout-keys", "key": "nats-password"}


def test_readme_creates_the_secret_the_manifests_read() -> None:
    """deploy/README.md's `kubectl create secret` makes exactly the keys the settings name."""
    readme = (manifests.DEPLOY / "README.md").read_text(encoding="utf-8")
    commands = re.findall(
        r"kubectl [^\n]*create secret generic nats-auth-callout-keys(?:[^\n]*\\\n)*[^\n]*", readme
    )
    assert commands, "deploy/README.md must show how to create Secret nats-auth-callout-keys"
    for command in commands:
        keys = set(re.findall(r"--from-(?:file|literal)=([\w.-]+)=", command))
        assert keys == set(SECRET_KEYS), command


def test_dockerfile_runs_what_the_manifests_expect() -> None:
    """Same user, same entry point, same default config path, same port."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f"\nUSER {CALLOUT_UID}:{CALLOUT_UID}\n" in dockerfile
    assert '\nENTRYPOINT ["python", "-m", "callout"]\n' in dockerfile
    for workload in (_deployment(), _sidecar()):
        args = workload.container["args"]
        assert f"\nCMD {json_list(args)}\n" in dockerfile, f"{workload}: {args}"
        assert f"\nEXPOSE {workload.settings['http']['port']}\n" in dockerfile


def test_examples_use_the_image_of_this_version() -> None:
    """The Dockerfile's version label and every example image tag follow callout.__version__."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f"\nARG VERSION={__version__}\n" in dockerfile
    overlay = yaml.safe_load((manifests.OVERLAY / "kustomization.yaml").read_text(encoding="utf-8"))
    assert [image["newTag"] for image in overlay["images"]] == [__version__]
    for workload in (_deployment(), _sidecar()):
        assert workload.container["image"].endswith(f":{__version__}"), workload


def json_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def _nats_server_test(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_nats_server(), "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={"NATS_AUTH_PASSWORD": "x", "SYS_PASSWORD": "y"},
    )


def test_server_examples_refuse_to_start_until_the_keys_are_filled_in(tmp_path: Path) -> None:
    """A copied example fails loudly at start-up instead of running with someone else's keys."""
    chart = tmp_path / "chart.conf"
    chart.write_text(
        manifests.chart_server_config(manifests.chart_values(), "127.0.0.1:4222"), encoding="utf-8"
    )
    for config in (SERVER_CONFIG / "config-mode.conf", chart):
        result = _nats_server_test(config)
        assert result.returncode != 0
        assert "REPLACE_ME_" in result.stdout + result.stderr


def test_operator_mode_example_is_valid_with_real_jwts(tmp_path: Path) -> None:
    """operator-mode.conf, filled in with a real operator, accounts and resolver, parses."""
    vector = (vectors_dir() / "operator_mode" / "server.conf").read_text(encoding="utf-8")
    operator = re.search(r"^operator: (\S+)$", vector, re.MULTILINE)
    system = re.search(r"^system_account: (\S+)$", vector, re.MULTILINE)
    preload = re.search(r"^resolver_preload: \{\n(.*?)\n\}", vector, re.MULTILINE | re.DOTALL)
    assert operator
    assert system
    assert preload
    text = (SERVER_CONFIG / "operator-mode.conf").read_text(encoding="utf-8")
    replacements = {
        "REPLACE_ME_OPERATOR_JWT": operator.group(1),
        "  REPLACE_ME_SYSTEM_ACCOUNT_PUBLIC_KEY: REPLACE_ME_SYSTEM_ACCOUNT_JWT": preload.group(1),
        "REPLACE_ME_SYSTEM_ACCOUNT_PUBLIC_KEY": system.group(1),
        '"/data/jwt"': f'"{tmp_path / "jwt"}"',
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    config = tmp_path / "operator.conf"
    config.write_text(text, encoding="utf-8")
    result = _nats_server_test(config)
    assert result.returncode == 0, result.stdout + result.stderr


_COMMENTED_KEY = re.compile(r"# ([a-z_]+):$")


def _switched_on(text: str) -> tuple[str, list[str]]:
    """The settings with every commented-out top-level block (``# state:`` and the ``#   ``
    lines under it) uncommented, and the names of those blocks."""
    lines, blocks, inside = [], [], False
    given = text.splitlines()
    for number, line in enumerate(given):
        following = given[number + 1] if number + 1 < len(given) else ""
        started = _COMMENTED_KEY.fullmatch(line) if following.startswith("#   ") else None
        if started:
            blocks.append(started.group(1))
            inside = True
            lines.append(line[2:])
        elif inside and line.startswith("#   "):
            lines.append(line[2:].split(" #", 1)[0].rstrip())
        else:
            inside = False
            lines.append(line)
    return "\n".join(lines), blocks


def test_the_commented_blocks_are_valid_settings_and_files_of_the_pod(workload: Workload) -> None:
    """What an operator uncomments (shared state, live sessions) is accepted by the settings
    as written, and its secret files are in the key Secret's volume, its deny list on a
    writable one."""
    text, blocks = _switched_on(workload.settings_text)
    assert {"state", "sessions"} <= set(blocks), f"{workload}: commented blocks {blocks}"
    settings = Settings.model_validate(yaml.safe_load(text))
    assert settings.state.enabled
    assert settings.sessions.enabled
    assert settings.sessions.system is not None
    secrets = _mount(workload, "/etc/callout/secrets")
    for path in (settings.state.key_file, settings.sessions.system.password_file):
        assert path is not None
        assert str(path.parent) == secrets["mountPath"], path
    deny_list = settings.sessions.deny_list_file
    assert deny_list is not None
    writable = _mount(workload, str(deny_list.parent))
    assert not writable.get("readOnly"), f"{workload}: {deny_list} on a read-only volume"
