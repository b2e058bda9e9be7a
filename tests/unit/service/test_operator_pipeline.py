"""The pipeline with the operator-mode issuer: placement by name, the system account by key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.credentials.passwords import hash_password
from callout.decision import Reason
from callout.devserver.operator_mode import OperatorModeSetup
from callout.policy.loader import load_policy
from callout.protocol import jwt
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.operator_issuer import AccountSigner, OperatorModeIssuer
from callout.service.pipeline import Pipeline
from callout.service.runtime import Runtime
from callout.service.wiring import system_account_name
from callout.testing import ServerSimulator

NOW = 1_800_000_000
CALLOUT = KeyPair.generate(KeyRole.ACCOUNT)
APP, APP_SK = KeyPair.generate(KeyRole.ACCOUNT), KeyPair.generate(KeyRole.ACCOUNT)
SYS = KeyPair.generate(KeyRole.ACCOUNT)


@pytest.fixture
async def pipeline(tmp_path: Path) -> Pipeline:
    pw = hash_password("pw")
    (tmp_path / "p.yaml").write_text(
        f"""
version: 1
defaults: {{account: APP}}
roles:
  app: {{publish: {{allow: ["app.>"]}}}}
  admin: {{allow_system_account: true}}
users:
  alice: {{password: "{pw}", roles: [app]}}
  mistaken: {{password: "{pw}", roles: [app], account: OPS_SYS}}
  admin: {{password: "{pw}", roles: [app, admin], account: OPS_SYS}}
  keyed: {{password: "{pw}", roles: [app], account: {APP.public_key}}}
"""
    )
    issuer = OperatorModeIssuer(
        AccountSigner(CALLOUT.public_key, CALLOUT),
        {
            "APP": AccountSigner(APP.public_key, APP_SK),
            "OPS_SYS": AccountSigner(SYS.public_key, SYS),
        },
    )
    runtime = Runtime(load_policy(tmp_path), issuer, system_account="OPS_SYS")
    return Pipeline(
        runtime=lambda: runtime, backends=[StaticBackend(PasswordVerifier(max_workers=1))]
    )


async def _decide(pipeline: Pipeline, user: str) -> tuple[Reason, bytes | None]:
    payload, header = ServerSimulator().request(
        now=NOW, connect={"user": user, "pass": "pw"}, callout_account=CALLOUT.public_key
    )
    opened = pipeline.open(payload, header, now=NOW)
    decision = await pipeline.decide(opened, now=NOW)
    return decision.reason, pipeline.answer(opened, decision, now=NOW)


async def test_users_land_in_the_account_the_policy_names(pipeline: Pipeline) -> None:
    """The name in the policy becomes the signer in the JWT: issuer_account = APP's key."""
    reason, reply = await _decide(pipeline, "alice")
    assert reason is Reason.ALLOWED
    assert reply is not None
    response = jwt.decode(reply.decode(), expected_type="authorization_response")
    assert response["iss"] == CALLOUT.public_key
    user = jwt.decode(response["nats"]["jwt"], expected_type="user")
    assert (user["iss"], user["nats"]["issuer_account"]) == (APP_SK.public_key, APP.public_key)


async def test_the_system_account_is_guarded_whatever_the_settings_call_it(
    pipeline: Pipeline,
) -> None:
    """Found by its public key, not its name: a policy cannot sneak in under another name."""
    assert (await _decide(pipeline, "mistaken"))[0] is Reason.ACCOUNT_NOT_ALLOWED
    assert (await _decide(pipeline, "admin"))[0] is Reason.ALLOWED


async def test_the_guard_follows_the_reloaded_system_account(pipeline: Pipeline) -> None:
    """The pipeline reads the system account from the runtime a request is decided with (in
    operator mode a name the settings found by key): a reload that names it changes the guard."""
    current = pipeline.runtime()
    unnamed = dataclasses.replace(current, system_account=None)
    runtimes = [unnamed]
    pipeline.runtime = lambda: runtimes[-1]
    assert (await _decide(pipeline, "mistaken"))[0] is Reason.ALLOWED
    runtimes.append(current)
    assert (await _decide(pipeline, "mistaken"))[0] is Reason.ACCOUNT_NOT_ALLOWED


async def test_accounts_are_named_never_addressed_by_key(pipeline: Pipeline) -> None:
    """A policy writing a public key instead of a configured name places nobody."""
    assert (await _decide(pipeline, "keyed"))[0] is Reason.ACCOUNT_NOT_ALLOWED


def test_the_system_account_name_is_resolved_from_its_key(tmp_path: Path) -> None:
    """Settings give SYS by key (as the server config does); policies use the configured name."""
    setup = OperatorModeSetup(tmp_path, 4222, system_target=True).write()
    assert system_account_name(setup.settings(tmp_path)) == "SYS"
    plain = OperatorModeSetup(tmp_path / "plain", 4222).write()
    assert system_account_name(plain.settings(tmp_path)) is None
