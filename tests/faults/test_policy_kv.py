"""Policies distributed through JetStream KV, on a real 3-node JetStream cluster (an R3 bucket)
with 3 service replicas: `callout policy push` reaches every replica within a second; a broken
policy never replaces the running one (refused by push, and by every replica when written
around it); rollback restores an older revision; with one NATS node dead, pushes still reach
every replica."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
import yaml

from callout.bench.rawnats import Credential, login
from callout.devserver.config_mode import ConfigModeSetup, config_safe_password
from callout.devserver.processes import NatsServer, free_port
from callout.policy.bundle import make_bundle
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.secretfiles import write_secret
from callout.service.app import App
from callout.service.policystore import open_bucket, put_bundle
from callout.settings import PolicyKvSettings
from tests.faults.policykv import (
    KV,
    REACH_BOUND,
    Deployment,
    policy_dir,
    pushed_revision,
    started_deployment,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRST = KeyPair.generate(KeyRole.USER)
SECOND = KeyPair.generate(KeyRole.USER)


async def _logins(ports: list[int], key: KeyPair, count: int = 6) -> list[bool]:
    """``count`` nkey logins through each node: whichever replica the queue group picks."""
    attempts = [login("127.0.0.1", port, Credential(nkey=key), 5.0) for port in ports]
    return [a.ok for a in await asyncio.gather(*(attempts * count))]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with started_deployment(tmp_path, policy_dir(tmp_path / "unused", FIRST)) as running:
        yield running


async def test_a_push_reaches_every_replica_within_a_second(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Before any push a replica is not ready and refuses everyone; each push then runs on
    all three replicas within `REACH_BOUND`, with the digest `policy check` prints."""
    ports = deployment.ports
    empty = await deployment.replicas[0].readyz()
    assert empty["checks"]["policy_loaded"] is False
    assert empty["policy"]["revision"] == 0
    assert not any(await _logins(ports, FIRST, 1))

    await deployment.push_and_wait(policy_dir(tmp_path / "v1", FIRST))
    assert all(await _logins(ports, FIRST))
    assert not any(await _logins(ports, SECOND))

    second_dir = policy_dir(tmp_path / "v2", FIRST, SECOND)
    second = pushed_revision(deployment.push(second_dir))
    took = await deployment.wait_for_revision(second, REACH_BOUND)
    assert took <= REACH_BOUND
    assert all(await _logins(ports, SECOND))
    digests = {(await r.readyz())["policy"]["digest"] for r in deployment.replicas}
    check = deployment.cli("check", second_dir)
    assert len(digests) == 1
    assert f"digest {digests.pop()[:12]}" in check.stderr


async def test_a_broken_policy_never_replaces_the_running_one(
    deployment: Deployment, tmp_path: Path
) -> None:
    """`policy push` refuses a broken policy with the checker's messages and exit code; the
    same policy written into the bucket around the checker is refused by every replica, which
    keep their revision and show the drift."""
    ports = deployment.ports
    running = await deployment.push_and_wait(policy_dir(tmp_path / "v1", FIRST))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "policy.yaml").write_text("version: 1\nusers:\n  x:\n    rolez: [app]\n")
    refused = deployment.push(broken)
    assert refused.returncode == 1
    assert "policy.yaml:4: users.x.rolez: unknown key" in refused.stdout
    assert "nothing was pushed" in refused.stderr
    history = deployment.cli("history", "--config", deployment.config, "--json")
    assert [json.loads(line)["revision"] for line in history.stdout.splitlines()] == [running]

    text = (broken / "policy.yaml").read_text()
    bad = make_bundle({"policy.yaml": text}, pushed_by="x", pushed_at=datetime.now(UTC))
    password = deployment.cluster.nodes[0].setup.auth_password
    nc = await nats.connect(f"nats://127.0.0.1:{ports[0]}", user="auth", password=password)
    try:
        damaged = await put_bundle(await open_bucket(nc.jetstream(), PolicyKvSettings()), bad)
    finally:
        await nc.close()
    await _wait_for(lambda: _all_drift(deployment, damaged), REACH_BOUND + 1.0)
    assert await deployment.revisions() == [running] * 3
    assert all(await _logins(ports, FIRST))
    assert await deployment.replicas[2].metric("callout_policy_drift") == 1.0
    rejected = 'callout_policy_bundles_rejected_total{reason="check"}'
    assert await deployment.replicas[2].metric(rejected) == 1.0
    for replica in deployment.replicas:
        replica.process.wait_for("policy_bundle_rejected", 2.0)
    # A replica restarted now has no last good policy of its own: it takes the newest good
    # revision the bucket keeps, and shows the drift.
    restarted = deployment.replicas[2]
    restarted.process.stop()
    offset = len(restarted.process.text())
    restarted.process.start()
    restarted.process.wait_for("service_ready", 20.0, after=offset)
    state = await restarted.readyz()
    assert state["ready"] is True
    assert state["policy"] | {"digest": ""} == {
        "source": "kv",
        "bucket": "callout_policy",
        "digest": "",
        "revision": running,
        "bucket_revision": damaged,
        "drift": True,
        "bucket_reachable": True,
    }
    # the fallback is logged by the start-up that made the replica ready; wait (bounded) for
    # the line rather than read the log at once (the file is written by another process)
    restarted.process.wait_for("policy_bundle_fallback", 5.0, after=offset)


async def test_rollback_restores_an_older_revision(deployment: Deployment, tmp_path: Path) -> None:
    """`policy rollback REV` checks REV again and pushes its files as the newest revision;
    every replica runs it within the bound, and the history says it was a rollback."""
    ports = deployment.ports
    first = await deployment.push_and_wait(policy_dir(tmp_path / "v1", FIRST))
    second = await deployment.push_and_wait(policy_dir(tmp_path / "v2", FIRST, SECOND))
    back = deployment.cli("rollback", str(first), "--config", deployment.config, "--by", "t")
    restored = pushed_revision(back)
    assert restored > second
    took = await deployment.wait_for_revision(restored, REACH_BOUND)
    assert took <= REACH_BOUND
    assert not any(await _logins(ports, SECOND))
    assert all(await _logins(ports, FIRST))
    state = await deployment.replicas[0].readyz()
    assert state["policy"]["drift"] is False
    assert state["ready"] is True
    listed = deployment.cli("history", "--config", deployment.config)
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[-1].endswith(f"t (rollback to {first})")
    missing = deployment.cli("rollback", "999", "--config", deployment.config)
    assert missing.returncode == 1
    assert "revision 999: not in the bucket" in missing.stderr


async def test_a_push_reaches_every_replica_with_one_node_dead(
    deployment: Deployment, tmp_path: Path
) -> None:
    """R3: with one of three nodes killed, a push is stored and reaches all three replicas
    (the one whose node died has reconnected to another)."""
    await deployment.push_and_wait(policy_dir(tmp_path / "v1", FIRST))
    killed = deployment.cluster.nodes[2].server.process
    assert killed is not None
    killed.kill()
    killed.wait(10)
    alive = [deployment.cluster.nodes[0].port, deployment.cluster.nodes[1].port]

    async def reconnected() -> bool:
        return all([(await r.readyz())["checks"]["nats_connected"] for r in deployment.replicas])

    await _wait_for(reconnected, 10.0)
    second_dir = policy_dir(tmp_path / "v2", FIRST, SECOND)
    server = f"nats://127.0.0.1:{alive[0]}"
    result = deployment.push(second_dir, "--server", server)
    for _ in range(10):  # the stream may be electing a leader for a few seconds
        if result.returncode == 0:
            break
        await asyncio.sleep(1.0)
        result = deployment.push(second_dir, "--server", server)
    second = pushed_revision(result)
    # a watch lost with its server is replaced by the periodic check (KV check_interval):
    # every replica gets there, however busy the machine (the 1 s reach is the healthy case)
    await deployment.wait_for_revision(second, 10 * (REACH_BOUND + KV["check_interval"]))
    assert all(await _logins(alive, SECOND))


async def _all_drift(deployment: Deployment, latest: int) -> bool:
    states = [(await r.readyz())["policy"] for r in deployment.replicas]
    return all(s["drift"] and s["bucket_revision"] == latest for s in states)


async def _wait_for(condition: Any, bound: float) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {bound}s")


README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("### Policies from JetStream KV\n", 1)[1].split("\n### ", 1)[0]


def _fenced(section: str, language: str) -> list[str]:
    blocks = re.findall(r"^```([a-z]*)\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    return [body for found, body in blocks if found == language]


async def test_readme_commands_run_as_written(deployment: Deployment, tmp_path: Path) -> None:
    """The README's push, history and rollback lines, run in a directory holding the
    documented `callout.yaml` (a replica's settings with the README's policy section) and
    `policies/`: each exits 0, and the replicas end on the rollback's revision."""
    section = _readme_section()
    (documented,) = [yaml.safe_load(block) for block in _fenced(section, "yaml")]
    settings = yaml.safe_load(deployment.config.read_text())
    settings["policy"] = {**documented["policy"], "directory": settings["policy"]["directory"]}
    settings["policy"]["kv"] |= {"check_interval": KV["check_interval"]}
    (tmp_path / "callout.yaml").write_text(yaml.safe_dump(settings))
    policy_dir(tmp_path / "policies", FIRST)
    (commands,) = _fenced(section, "sh")
    lines = [line.split("#", 1)[0].strip() for line in commands.splitlines()]
    assert [line.split()[2] for line in lines] == ["push", "history", "rollback"]
    for line in lines:
        argv = [sys.executable, "-m", "callout", *shlex.split(line)[1:]]
        done = await asyncio.to_thread(
            subprocess.run,
            argv,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{line}: {done.stdout}{done.stderr}"
    await deployment.wait_for_revision(pushed_revision(done), REACH_BOUND)
    # `history` printed its header and the first push.
    history = deployment.cli("history", "--config", tmp_path / "callout.yaml")
    assert history.stdout.splitlines()[0].split("\t") == [
        "REVISION", "DIGEST", "STORED_AT", "SIZE", "PUSHED_BY"
    ]  # fmt: skip


async def test_readme_least_privilege_users_do_what_they_must_and_nothing_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's `policy-admin` user and restricted service user, in a real server: push,
    history and rollback work with the pusher's permissions; a replica logged in as the
    service's user runs what was pushed and logins work; neither can delete the bucket, and
    the service's user cannot write it."""
    blocks = _fenced(_readme_section(), "")
    admin, service = (_entry(next(b for b in blocks if name in b)) for name in PRIVILEGED)
    setup = ConfigModeSetup(tmp_path / "server", free_port(), jetstream=True).write()
    config = setup.server_config().replace("auth_users: [auth]", "auth_users: [auth, policy-admin]")
    service_line = next(line for line in config.splitlines() if '{user: "auth"' in line)
    setup.config_file.write_text(config.replace(service_line, f"{service}\n{admin}"))
    password = config_safe_password()
    monkeypatch.setenv("POLICY_ADMIN_PASSWORD", password)
    monkeypatch.setenv("NATS_AUTH_PASSWORD", setup.auth_password)
    write_secret(tmp_path / "admin-password", password)
    flags = ["--server", f"nats://127.0.0.1:{setup.port}", "--login", "policy-admin"]
    flags += ["--password-file", str(tmp_path / "admin-password")]

    def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "callout", "policy", *map(str, args), *flags]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    policy = {"directory": tmp_path, "source": "kv", "kv": {"check_interval": 1.0}}
    with NatsServer(setup.config_file, setup.port):
        first = pushed_revision(
            await asyncio.to_thread(cli, "push", policy_dir(tmp_path / "v1", FIRST), "--by", "ci")
        )
        app = App(setup.settings(tmp_path, policy=policy))
        await app.start()
        try:
            assert app.service.policy_feed is not None
            assert app.service.policy_feed.active_revision == first
            second = policy_dir(tmp_path / "v2", FIRST, SECOND)
            pushed_revision(await asyncio.to_thread(cli, "push", second, "--by", "ci"))
            listed = await asyncio.to_thread(cli, "history", "--json")
            assert len(listed.stdout.splitlines()) == 2, listed.stderr
            restored = pushed_revision(await asyncio.to_thread(cli, "rollback", str(first)))
            await _wait_for(_running(app, restored), 2.0)
            assert await _logins([setup.port], FIRST, 2) == [True, True]
            assert await _logins([setup.port], SECOND, 1) == [False]
            assert not await _can_write(setup.port, "auth", setup.auth_password)
            assert not await _can_write(setup.port, "policy-admin", password, delete=True)
        finally:
            await app.stop()
        assert len((await asyncio.to_thread(cli, "history", "--json")).stdout.splitlines()) == 3


PRIVILEGED = ("policy-admin", "user: auth")


def _entry(block: str) -> str:
    return "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#"))


def _running(app: App, revision: int) -> Any:
    async def check() -> bool:
        feed = app.service.policy_feed
        return feed is not None and feed.active_revision == revision

    return check


async def _can_write(port: int, user: str, password: str, *, delete: bool = False) -> bool:
    """Whether ``user`` can put a value into the policy bucket (or delete the bucket)."""
    nc = await nats.connect(f"nats://127.0.0.1:{port}", user=user, password=password)
    try:
        js = nc.jetstream(timeout=1.0)
        if delete:
            await js.delete_key_value(PolicyKvSettings().bucket)
        else:
            kv = await js.key_value(PolicyKvSettings().bucket)
            await kv.put("bundle", b"{}")
    except nats.errors.Error:
        return False
    finally:
        await nc.close()
    return True
