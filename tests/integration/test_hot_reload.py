"""Hot reload by watching directories: plain edits, broken edits, and Kubernetes symlink swaps."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from callout.credentials.passwords import hash_password
from callout.devserver.processes import free_port
from callout.service.app import App
from tests.integration.config_environment import ConfigEnvironment
from tests.integration.conftest import ENVIRONMENTS
from tests.integration.environments import Environment, connect
from tests.integration.httpget import http_get
from tests.integration.rawclient import raw_connect
from tests.integration.users import PASSWORDS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("deployment", [ENVIRONMENTS[1]], indirect=True, ids=["accounts"]),
]

_NEWCOMER = """\
version: 1
users:
  newcomer:
    password: "{hash}"
    roles: [app]
"""
NEWCOMER_HASH = hash_password("new-pw")


async def _eventually(check: Callable[[], bool], limit: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _can_log_in(deployment: Environment, user: str, password: str) -> bool:
    _, line = await raw_connect(deployment.server.port, {"user": user, "pass": password})
    return line == "PONG"


def _reloads(app: App, result: str) -> float:
    value = app.metrics.registry.get_sample_value(
        "callout_policy_reloads_total", {"result": result}
    )
    return value or 0.0


def _settings(deployment: Environment, policies: Path, **extra: Any) -> Any:
    return deployment.settings(policy={"directory": policies}, **extra)


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
async def test_an_edit_in_the_policy_directory_is_applied_without_a_signal(
    deployment: Environment, tmp_path: Path, polling: bool
) -> None:
    """Security teams change policy files; the service follows within a second, no restart."""
    policies = tmp_path / "policies"
    shutil.copytree(deployment.policy_dir, policies)
    reload = {"force_polling": polling, "poll_interval": 0.1}
    app = App(_settings(deployment, policies, reload=reload))
    await app.start()
    try:
        before = app.current_runtime().policy.digest
        assert not await _can_log_in(deployment, "newcomer", "new-pw")
        (policies / "newcomer.yaml").write_text(_NEWCOMER.format(hash=NEWCOMER_HASH))
        await _eventually(lambda: app.current_runtime().policy.digest != before)
        assert await _can_log_in(deployment, "newcomer", "new-pw")
        assert _reloads(app, "success") >= 1
    finally:
        await app.stop()


async def test_a_broken_edit_keeps_the_last_good_policy_logs_the_file_and_stays_ready(
    deployment: Environment, tmp_path: Path
) -> None:
    """A typo must never lock everyone out or take the instance out of service."""
    policies = tmp_path / "policies"
    shutil.copytree(deployment.policy_dir, policies)
    http = {"enabled": True, "host": "127.0.0.1", "port": free_port()}
    app = App(_settings(deployment, policies, http=http))
    await app.start()
    try:
        good = app.current_runtime().policy.digest
        with capture_logs() as logs:
            (policies / "broken.yaml").write_text("version: 1\nusers: [this is not a mapping\n")
            await _eventually(lambda: _reloads(app, "failure") >= 1)
        failures = [entry for entry in logs if entry["event"] == "reload_failed"]
        assert failures
        assert "broken.yaml" in failures[0]["error"]
        assert app.current_runtime().policy.digest == good
        assert app.http is not None
        status, _ = await http_get(app.http.port, "/readyz")
        assert status == 200
        nc = await connect(deployment.url, user="alice", password=PASSWORDS["alice"])
        await nc.close()
    finally:
        await app.stop()


def _kubelet_write(mount: Path, generation: int, files: dict[str, str]) -> None:
    """What kubelet's atomic writer does: a new timestamped directory, a ``..data_tmp``
    symlink to it renamed over ``..data``, the old directory removed."""
    target = mount / f"..2026_01_01_00_00_0{generation}.000000000"
    target.mkdir()
    for name, text in files.items():
        (target / name).write_text(text)
    old = os.readlink(mount / "..data") if (mount / "..data").is_symlink() else None
    (mount / "..data_tmp").symlink_to(target.name)
    (mount / "..data_tmp").rename(mount / "..data")
    for name in files:
        link = mount / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    if old is not None:
        shutil.rmtree(mount / old)


async def test_kubernetes_configmap_symlink_swaps_are_followed_every_time(
    deployment: Environment, tmp_path: Path
) -> None:
    """ConfigMap volumes change by swapping ``..data``; a file watch would see only the first."""
    mount = tmp_path / "mount"
    mount.mkdir()
    base = (deployment.policy_dir / "policy.yaml").read_text()
    newcomer = _NEWCOMER.format(hash=NEWCOMER_HASH)
    _kubelet_write(mount, 1, {"policy.yaml": base})
    app = App(_settings(deployment, mount))
    await app.start()
    try:
        for generation, extra in ((2, newcomer), (3, None), (4, newcomer)):
            files = {"policy.yaml": base}
            if extra:
                files["newcomer.yaml"] = extra
            before = app.current_runtime().policy.digest
            _kubelet_write(mount, generation, files)
            if extra is None:
                (mount / "newcomer.yaml").unlink()  # kubelet removes links of dropped keys
            await _eventually(lambda before=before: app.current_runtime().policy.digest != before)
            assert await _can_log_in(deployment, "newcomer", "new-pw") == bool(extra)
    finally:
        await app.stop()


async def test_a_broken_or_removed_key_file_is_not_swapped_in(
    deployment: ConfigEnvironment, tmp_path: Path
) -> None:
    """Keys reload like policies (their directory is watched); a bad seed or a missing file
    keeps the old key, counted as a failed reload, and logins keep working."""
    keys = tmp_path / "keys"
    keys.mkdir()
    seed = keys / "issuer.nk"
    shutil.copy(deployment.setup.issuer_seed_file, seed)
    seed.chmod(0o600)
    app = App(deployment.settings(keys={"issuer_seed_file": seed}))
    await app.start()
    try:
        seed.write_text("SAnot-a-seed\n")
        await _eventually(lambda: _reloads(app, "failure") >= 1)
        nc = await connect(deployment.url, user="alice", password=PASSWORDS["alice"])
        await nc.close()
        seed.unlink()
        await _eventually(lambda: _reloads(app, "failure") >= 2)
        assert app.readiness()["policy_loaded"]
        nc = await connect(deployment.url, user="alice", password=PASSWORDS["alice"])
        await nc.close()
    finally:
        await app.stop()
