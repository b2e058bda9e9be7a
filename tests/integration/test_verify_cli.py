"""`callout verify` as an operator runs it: the README command, its exit codes and --json."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.secretfiles import write_secret
from callout.service.app import App
from callout.settings import load_settings
from tests.integration.conftest import PASSWORDS, write_policy

ROOT = Path(__file__).resolve().parents[2]


def _readme_command() -> list[str]:
    """The command README "Before going live: callout verify" shows."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Before going live: callout verify", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(callout verify .*?)\n```", section)
    assert block is not None
    return shlex.split(block.group(1))


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """callout.yaml and alice.password as the README's command names them, and the server."""
    setup = ConfigModeSetup(tmp_path / "keys", free_port()).write()
    policies = write_policy(tmp_path / "policies", "APP", "OPS")
    (tmp_path / "callout.yaml").write_text(
        f"""\
nats:
  servers: ["nats://127.0.0.1:{setup.port}"]
  user: {setup.auth_user}
  password_file: {setup.password_file}
keys:
  issuer_seed_file: {setup.issuer_seed_file}
accounts: [APP, OPS]
policy:
  directory: {policies}
http:
  enabled: false
""",
        encoding="utf-8",
    )
    write_secret(tmp_path / "alice.password", PASSWORDS["alice"])
    with NatsServer(setup.config_file, setup.port):
        yield tmp_path


@pytest.fixture
async def serving(workdir: Path) -> AsyncIterator[Path]:
    app = App(load_settings(workdir / "callout.yaml"))
    await app.start()
    try:
        yield workdir
    finally:
        await app.stop()


async def _callout(cwd: Path, argv: list[str]) -> tuple[int, str, str]:
    """Exit code, stdout (the checklist alone) and stderr (logs, errors)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callout",
        *argv,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_readme_command_passes_against_a_correct_set_up(serving: Path) -> None:
    """The command an operator copies from the README, as written: exit 0, every check ok."""
    argv = _readme_command()
    assert argv[0] == "callout"
    code, out, err = await _callout(serving, argv[1:])
    assert code == 0, out + err
    assert out.rstrip().endswith("ready to go live")
    assert "[  ok] test login: allow: connected" in out


async def test_json_output_is_the_checklist(serving: Path) -> None:
    code, out, err = await _callout(serving, [*_readme_command()[1:], "--json"])
    assert code == 0, out + err
    body = json.loads(out)  # stdout is the JSON document alone
    assert body["ok"] is True
    names = [check["name"] for check in body["checks"]]
    assert names[:3] == ["settings and keys", "service login", "callout service"]
    assert {check["status"] for check in body["checks"]} == {"ok"}


async def test_a_failed_check_exits_1(workdir: Path) -> None:
    """No service running: the checklist says so and the exit code fails the pipeline."""
    code, out, _ = await _callout(workdir, _readme_command()[1:])
    assert code == 1
    assert "[FAIL] callout service" in out
    assert out.rstrip().endswith("NOT ready: fix the FAIL items")


async def test_usage_and_configuration_errors_have_their_exit_codes(workdir: Path) -> None:
    argv = ["verify", "--config", "callout.yaml", "--expect", "allow"]
    code, _, err = await _callout(workdir, argv)
    assert code == 2
    assert "--expect needs a test login" in err
    (workdir / "broken.yaml").write_text("nats: {pasword_file: x}\n", encoding="utf-8")
    code, _, err = await _callout(workdir, ["verify", "--config", "broken.yaml"])
    assert code == 78
    assert "configuration error" in err
