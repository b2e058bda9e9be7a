"""Operator mode beyond the shared suite: scoped keys, the system account, unknown accounts,
and signing-key rotation under load, against a real nats-server with a minted trust chain."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from callout.credentials.passwords import hash_password
from callout.decision import Reason
from callout.devserver.operator_mode import SCOPE_TEMPLATE, SYSTEM_ACCOUNT, OperatorModeSetup
from callout.protocol.nkeys import KeyPair
from callout.secretfiles import write_secret
from callout.service.app import App
from callout.settings import Settings, load_settings
from tests.counts import decisions
from tests.integration.environments import Environment
from tests.integration.operator_environment import OperatorEnvironment
from tests.integration.rawclient import raw_connect
from tests.integration.users import LOAD_USER

pytestmark = pytest.mark.integration

_POLICY = """\
version: 1
roles:
  app:
    publish: {{allow: ["app.>", "$SYS.REQ.USER.INFO"]}}
    subscribe: {{allow: ["app.>", "_INBOX.>"]}}
  operators:
    publish: {{allow: ["$SYS.REQ.USER.INFO"]}}
    subscribe: {{allow: ["_INBOX.>"]}}
    allow_system_account: true
users:
  scoper:
    password: "{pw}"
    roles: [app]
    account: SCOPED
  scoper-lan:
    password: "{pw}"
    roles: [app]
    account: SCOPED
    src: ["10.0.0.0/8"]
  sys-by-mistake:
    password: "{pw}"
    roles: [app]
    account: SYS
  sys-admin:
    password: "{pw}"
    roles: [operators]
    account: SYS
  elsewhere:
    password: "{pw}"
    roles: [app]
    account: ELSEWHERE
"""
PASSWORD = "op-pw"


@pytest.fixture(scope="module")
def special(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorEnvironment]:
    """APP with a signing key, SCOPED with a scoped key, SYS as a (guarded) target."""
    directory = tmp_path_factory.mktemp("operator-special")
    policies = directory / "policies"
    policies.mkdir()
    (policies / "operator.yaml").write_text(_POLICY.format(pw=hash_password(PASSWORD)))
    env = OperatorEnvironment(
        "operator-special",
        target_accounts=("APP",),
        scoped_accounts=("SCOPED",),
        signing_keys=True,
        default_sentinel=True,
        system_target=True,
    ).start(directory, policies)
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture
async def special_service(special: OperatorEnvironment) -> AsyncIterator[App]:
    app = App(special.settings())
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def _user_info(nc: nats.NATS, patience: float = 2) -> dict[str, Any]:
    reply = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=patience)
    data: dict[str, Any] = json.loads(reply.data)["data"]
    return data


async def _refused(deployment: Environment, user: str) -> bool:
    fields = deployment.raw_fields({"user": user, "pass": PASSWORD})
    _, line = await raw_connect(deployment.server.port, fields)
    return "Authorization Violation" in line


async def test_a_scoped_signing_key_gets_the_scope_template_instead_of_the_policy_grants(
    special: OperatorEnvironment, special_service: App
) -> None:
    """nats-server rejects scoped users with their own permissions; the scope decides."""
    nc = await special.connect(user="scoper", password=PASSWORD)
    try:
        info = await _user_info(nc)
    finally:
        await nc.close()
    assert info["account"] == special.setup.public_key("SCOPED")
    assert sorted(info["permissions"]["publish"]["allow"]) == sorted(SCOPE_TEMPLATE.pub_allow)
    assert sorted(info["permissions"]["subscribe"]["allow"]) == sorted(SCOPE_TEMPLATE.sub_allow)


async def test_conditions_still_hold_for_scoped_accounts(
    special: OperatorEnvironment, special_service: App
) -> None:
    """The scoped JWT cannot carry src, so the service's own check is what enforces it."""
    assert await _refused(special, "scoper-lan")
    assert decisions(special_service.metrics)[Reason.SOURCE_NOT_ALLOWED] == 1


async def test_the_system_account_needs_an_explicit_policy_grant(
    special: OperatorEnvironment, special_service: App
) -> None:
    """Even when the server would accept it, nobody lands in SYS unless the policy says so."""
    assert await _refused(special, "sys-by-mistake")
    assert decisions(special_service.metrics)[Reason.ACCOUNT_NOT_ALLOWED] == 1
    nc = await special.connect(user="sys-admin", password=PASSWORD)
    try:
        info = await _user_info(nc)
    finally:
        await nc.close()
    assert info["account"] == special.setup.public_key(SYSTEM_ACCOUNT)


async def test_an_account_that_is_not_configured_is_never_a_target(
    special: OperatorEnvironment, special_service: App
) -> None:
    """The service signs only for accounts it has keys for; anything else is a deny."""
    assert await _refused(special, "elsewhere")
    assert decisions(special_service.metrics)[Reason.ACCOUNT_NOT_ALLOWED] == 1


# --- rotation -------------------------------------------------------------------------------


class _Pusher:
    """Publishes account JWTs to the running server, as `nsc push` does (system account)."""

    def __init__(self, setup: OperatorModeSetup, nc: nats.NATS) -> None:
        self.setup, self.nc, self.iat = setup, nc, int(time.time())

    async def push(self, name: str) -> None:
        self.iat += 1
        account = self.setup.public_key(name)
        token = self.setup.account_jwt(name, iat=self.iat)
        reply = await self.nc.request(
            f"$SYS.REQ.ACCOUNT.{account}.CLAIMS.UPDATE", token.encode(), timeout=2
        )
        assert json.loads(reply.data)["data"]["code"] == 200


async def _steady_logins(
    deployment: Environment, phase: list[str], stop: asyncio.Event, results: Counter[str]
) -> None:
    user, password = LOAD_USER
    while not stop.is_set():
        current = phase[0]
        try:
            # client-side bounds well above the server's 2 s auth timeout: a login the service
            # fails to answer in time is the server's refusal, never the client giving up first
            nc = await deployment.connect(user=user, password=password, connect_timeout=10)
            info = await _user_info(nc, patience=10)
            await nc.close()
        except Exception as error:  # noqa: BLE001 - every failure is what this test counts
            results[f"{current}:failed:{type(error).__name__}"] += 1
        else:
            ok = info["account"] == deployment.main_account
            results[f"{current}:{'ok' if ok else 'wrong-account'}"] += 1


def _rotated(values: dict[str, Any], directory: Path, keys: dict[str, list[KeyPair]]) -> Settings:
    """Settings whose active keys are the last of ``keys`` per account (APP, AUTH)."""
    operator = values["operator"]
    for name, listed in keys.items():
        entry = operator["callout_account"] if name == "AUTH" else operator["accounts"][name]
        entry["signing_seed_file"] = directory / f"{name}-{listed[-1].public_key}.nk"
        entry["signing_keys"] = [key.public_key for key in listed]
    return load_settings(None, **values)


@pytest.mark.slow
async def test_rotating_a_signing_key_under_load_drops_no_login(tmp_path: Path) -> None:
    """nsc's rotation (add key, push, switch, later remove and push) with the service reloaded
    in between: not one login fails, and the new key is really used (the old one is gone)."""
    # Removing a signing key revokes every user it signed: the service's own creds and the
    # sentinels must not hang on the response key being rotated (see README, Operator mode).
    deployment = OperatorEnvironment(
        "rotation", target_accounts=("APP",), signing_keys=True, stable_user_key=True
    ).start(tmp_path)
    setup, server = deployment.setup, deployment.server
    try:
        values = setup.settings_values(deployment.policy_dir)
        current = [load_settings(None, **values)]
        app = App(current[0], settings_source=lambda: current[0])
        await app.start()
        system = await nats.connect(server.url, user_credentials=str(setup.system_creds_file))
        pusher = _Pusher(setup, system)
        rotated = ("APP", "AUTH")  # a target account's key and the response key
        old = {name: setup.accounts[name].signer for name in rotated}
        phase, stop, results = ["old-key"], asyncio.Event(), Counter[str]()
        load = [
            asyncio.create_task(_steady_logins(deployment, phase, stop, results)) for _ in range(4)
        ]
        try:
            await asyncio.sleep(1.0)
            new = {}
            for name in rotated:
                new[name] = setup.add_signing_key(name)  # nsc edit account NAME --sk generate
                await pusher.push(name)  # nsc push: the JWT lists both keys
                seed_file = tmp_path / "keys" / f"{name}-{new[name].public_key}.nk"
                write_secret(seed_file, new[name].seed)
            phase[0] = "overlap"
            await asyncio.sleep(0.5)
            both = {name: [old[name], new[name]] for name in rotated}
            current[0] = _rotated(values, tmp_path / "keys", both)
            assert app.reload()
            phase[0] = "new-key"
            await asyncio.sleep(1.0)
            for name in rotated:
                setup.remove_signing_key(name, old[name].public_key)  # nsc edit account --rm-sk
                await pusher.push(name)
            current[0] = _rotated(values, tmp_path / "keys", {n: [new[n]] for n in rotated})
            assert app.reload()
            phase[0] = "old-key-removed"
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await asyncio.gather(*load)
            await system.close()
            await app.stop()
    finally:
        deployment.stop()
    failed = {key: n for key, n in results.items() if not key.endswith(":ok")}
    assert failed == {}
    for name in ("old-key", "overlap", "new-key", "old-key-removed"):
        assert results[f"{name}:ok"] > 0, results
