"""The commands deploy/README.md shows run as written (in a scratch directory).

`callout` commands run for real. `kubectl create secret|configmap` run with
``--dry-run=client -o yaml`` (no cluster needed) and must produce the objects the manifests
mount. Commands that need a cluster (`kubectl apply|rollout|logs|exec`, `helm`) are not run;
what they apply is validated by deploy/check.sh (rendered manifests) and tests/deploy.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "deploy" / "README.md"
_SH_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
_INLINE = re.compile(r"`(callout [^`]+)`")


def _commands() -> list[str]:
    text = README.read_text()
    lines = [
        line.split("#", 1)[0].strip()
        for block in _SH_BLOCK.findall(text)
        for line in block.splitlines()
        if line.startswith("callout ")
    ]
    lines += [c for c in _INLINE.findall(text) if "--issuer-seed-file" in c]
    return lines


def test_deploy_readme_callout_commands_run(tmp_path: Path) -> None:
    """Keys first, then the server block from them: the order an operator follows."""
    commands = _commands()
    assert any(c.startswith("callout keys generate") for c in commands)
    assert any(c.startswith("callout nats-config") for c in commands)
    for command in commands:
        argv = [sys.executable, "-m", "callout", *shlex.split(command)[1:]]
        result = subprocess.run(
            argv, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    assert (tmp_path / "keys" / "issuer.nk").stat().st_mode & 0o077 == 0


def _kubectl_creates() -> list[str]:
    """`kubectl ... create secret|configmap` commands, continuation lines joined."""
    found = []
    for block in _SH_BLOCK.findall(README.read_text()):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            command = line.split(" | ", 1)[0].split("#", 1)[0].strip()
            if re.match(r"kubectl (-n \S+ )?create (secret|configmap) ", command):
                found.append(command.replace("--dry-run=client -o yaml", "").strip())
    return found


def _kubectl() -> str:
    for candidate in (shutil.which("kubectl"), ROOT / ".venv-tools" / "bin" / "kubectl"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    if os.environ.get("CI") == "true":
        pytest.fail("kubectl not found (deploy/check.sh installs it into .venv-tools)")
    pytest.skip("kubectl not found; run deploy/check.sh once to install it")


def test_deploy_readme_kubectl_creates_make_the_objects_the_manifests_mount(
    tmp_path: Path,
) -> None:
    """Secret and ConfigMap as the README makes them: the names and keys the pods read."""
    kubectl = _kubectl()
    subprocess.run(
        [sys.executable, "-m", "callout", "keys", "generate", "--dir", "keys"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    shutil.copytree(ROOT / "deploy/kustomize/overlays/example/policies", tmp_path / "my-policies")
    commands = _kubectl_creates()
    assert len(commands) >= 3
    for command in commands:
        script = command.replace("kubectl ", f"{shlex.quote(kubectl)} ", 1)
        result = subprocess.run(
            ["bash", "-c", f"{script} --dry-run=client -o yaml"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{command}: {result.stderr}"
        made = yaml.safe_load(result.stdout)
        assert made["metadata"]["name"] in {"nats-auth-callout-keys", "nats-auth-callout-policy"}
        if made["kind"] == "ConfigMap":
            assert "policy.yaml" in made["data"]
        else:
            assert set(made["data"]) == {"issuer.nk", "xkey.nk", "nats-password"}


def test_deploy_readme_fills_the_public_keys_into_the_chart_values(tmp_path: Path) -> None:
    """The cp + sed step leaves no placeholder: nats-server refuses to start with one."""
    text = README.read_text()
    blocks = [b for b in _SH_BLOCK.findall(text) if "cp deploy/nats-chart/" in b]
    assert len(blocks) == 1
    script = "\n".join(line.strip() for line in blocks[0].splitlines())
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    issuer = KeyPair.generate(KeyRole.ACCOUNT).public_key
    xkey = CurveKeyPair.generate().public_key
    env = {**os.environ, "ISSUER_PUBLIC_KEY": issuer, "XKEY_PUBLIC_KEY": xkey}
    subprocess.run(["bash", "-ec", script], cwd=tmp_path, env=env, check=True, timeout=30)
    values = (tmp_path / "values-callout.yaml").read_text()
    assert "REPLACE_ME_ISSUER" not in values
    assert "REPLACE_ME_XKEY" not in values
    assert issuer in values
    assert xkey in values


def test_deploy_readme_copied_overlay_renders(tmp_path: Path) -> None:
    """`cp -r .../example .../prod` then `kubectl apply -k .../prod`: the copy renders as is."""
    kubectl = _kubectl()
    text = README.read_text()
    copy = re.search(r"^(cp -r deploy/kustomize/overlays/example (\S+))", text, re.MULTILINE)
    assert copy, "deploy/README.md no longer shows how to copy the example overlay"
    assert re.search(rf"^kubectl apply -k {re.escape(copy.group(2))}$", text, re.MULTILINE)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    subprocess.run(["bash", "-ec", copy.group(1)], cwd=tmp_path, check=True, timeout=30)
    rendered = subprocess.run(
        [kubectl, "kustomize", copy.group(2)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered.stdout) if doc}
    assert {"Deployment", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
