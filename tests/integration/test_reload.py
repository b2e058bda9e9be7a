"""Reloading policy and keys without a restart, against a real nats-server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from callout.credentials.passwords import hash_password
from callout.service.app import App
from tests.integration.environments import Environment
from tests.integration.rawclient import raw_connect
from tests.integration.users import PASSWORDS

pytestmark = pytest.mark.integration

_NEWCOMER = """\
version: 1
users:
  newcomer:
    password: "{hash}"
    roles: [app]
"""


async def test_a_valid_policy_change_is_picked_up_and_a_broken_one_is_not(
    deployment: Environment, tmp_path: Path
) -> None:
    """Security teams edit policies live: good edits apply, bad edits never lock everyone out."""
    policies = tmp_path / "policies"
    shutil.copytree(deployment.policy_dir, policies)
    app = App(deployment.settings(policy={"directory": policies}))
    await app.start()
    try:
        fields = deployment.raw_fields({"user": "newcomer", "pass": "new-pw"})
        _, before = await raw_connect(deployment.server.port, fields)
        assert "Authorization Violation" in before

        (policies / "newcomer.yaml").write_text(_NEWCOMER.format(hash=hash_password("new-pw")))
        assert app.reload()
        nc = await deployment.connect(user="newcomer", password="new-pw")
        await nc.close()

        (policies / "broken.yaml").write_text("version: 1\nusers: [this is not a mapping\n")
        good = app.current_runtime().policy.digest
        assert not app.reload()
        assert app.current_runtime().policy.digest == good
        nc = await deployment.connect(user="alice", password=PASSWORDS["alice"])
        await nc.close()
    finally:
        await app.stop()
