"""Logins through a real nats-server, in every environment: who gets in, where, with what."""

from __future__ import annotations

import asyncio
import base64
import json

import nats
import pytest

from callout.decision import Reason
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.app import App
from tests.counts import decisions
from tests.integration.environments import Environment
from tests.integration.rawclient import raw_connect
from tests.integration.users import PASSWORDS, SENSOR

pytestmark = pytest.mark.integration

AUTH_VIOLATION = "Authorization Violation"


async def _user_info(nc: nats.NATS) -> dict[str, object]:
    reply = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=2)
    data: dict[str, object] = json.loads(reply.data)["data"]
    return data


_CONNECT_FIELDS = {"user": "user", "password": "pass", "token": "auth_token", "name": "name"}


async def _refused(deployment: Environment, **options: str) -> str:
    """The server's answer to a login with these options (raw protocol: nats-py leaks the
    socket of a refused connect)."""
    fields = {_CONNECT_FIELDS[key]: value for key, value in options.items()}
    _, line = await raw_connect(deployment.server.port, deployment.raw_fields(fields))
    return line


async def test_valid_password_login_lands_in_the_policy_account(
    deployment: Environment, service: App
) -> None:
    """The basic promise: a known user with the right password gets the policy's grants."""
    nc = await deployment.connect(user="alice", password=PASSWORDS["alice"])
    try:
        info = await _user_info(nc)
    finally:
        await nc.close()
    assert info["account"] == deployment.main_account
    assert info["user"] == "alice"
    permissions = info["permissions"]
    assert isinstance(permissions, dict)
    assert "user.alice.>" in permissions["publish"]["allow"]
    assert decisions(service.metrics)[Reason.ALLOWED] >= 1


async def test_a_second_target_account_is_honoured(deployment: Environment, service: App) -> None:
    """Users can be placed into several accounts, as the policy says."""
    nc = await deployment.connect(user="bob", password=PASSWORDS["bob"])
    try:
        info = await _user_info(nc)
    finally:
        await nc.close()
    assert info["account"] == deployment.second_account


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"user": "alice", "password": "wrong"}, Reason.BAD_CREDENTIALS),
        ({"user": "mallory", "password": "whatever"}, Reason.UNKNOWN_USER),
        ({}, Reason.NO_CREDENTIALS),
        ({"token": "some-token"}, Reason.NO_CREDENTIALS),
    ],
    ids=["wrong-password", "unknown-user", "no-credentials", "unknown-token"],
)
async def test_bad_credentials_are_refused(
    deployment: Environment, service: App, options: dict[str, str], reason: Reason
) -> None:
    """Deny by default: anything but a verified credential is refused, with its precise reason."""
    assert AUTH_VIOLATION in await _refused(deployment, **options)
    assert decisions(service.metrics)[reason] == 1


@pytest.mark.nkey_login
async def test_nkey_login_with_a_valid_signature_is_allowed(
    deployment: Environment, service: App
) -> None:
    """nkey users prove key possession by signing the server's nonce."""
    nc = await deployment.connect(nkeys_seed_str=SENSOR.seed)
    try:
        info = await _user_info(nc)
    finally:
        await nc.close()
    assert info["account"] == deployment.main_account


@pytest.mark.nkey_login
async def test_nkey_login_with_a_forged_signature_is_refused(
    deployment: Environment, service: App
) -> None:
    """The server does not verify unknown nkeys' signatures (docs/protocol.md#nonces); we must."""
    stranger = KeyPair.generate(KeyRole.USER)

    def forged(nonce: str) -> str:
        return base64.b64encode(stranger.sign(nonce.encode())).decode()

    _, line = await raw_connect(deployment.server.port, {"nkey": SENSOR.public_key, "sig": forged})
    assert AUTH_VIOLATION in line
    _, unsigned = await raw_connect(deployment.server.port, {"nkey": SENSOR.public_key})
    assert AUTH_VIOLATION in unsigned
    assert decisions(service.metrics)[Reason.BAD_NKEY_SIGNATURE] == 1
    assert decisions(service.metrics)[Reason.NKEY_NOT_SIGNED] == 1


async def test_the_server_enforces_the_issued_permissions(
    deployment: Environment, service: App
) -> None:
    """Grants are not advisory: publishing or subscribing outside them is a violation."""
    errors: list[str] = []

    async def on_error(error: Exception) -> None:
        errors.append(str(error).lower())

    nc = await deployment.connect(user="alice", password=PASSWORDS["alice"], error_cb=on_error)
    try:
        await nc.publish("app.ok", b"x")
        await nc.publish("forbidden.subject", b"x")
        await nc.subscribe("forbidden.>")
        await nc.flush()
        for _ in range(50):
            if len(errors) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await nc.close()
    assert any('publish to "forbidden.subject"' in error for error in errors), errors
    assert any('subscription to "forbidden.>"' in error for error in errors), errors
    assert not any("app.ok" in error for error in errors)


async def test_the_connection_is_closed_when_the_user_jwt_expires(
    deployment: Environment, service: App
) -> None:
    """Expiry is real: the server drops the client when the issued JWT's exp passes."""
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    nc = await deployment.connect(
        user="shortlived", password=PASSWORDS["shortlived"], closed_cb=on_closed
    )
    try:
        await asyncio.wait_for(closed.wait(), timeout=8)
    finally:
        await nc.close()
    assert nc.is_closed


async def test_a_template_value_with_wildcards_denies_the_login(
    deployment: Environment, service: App
) -> None:
    """A client name like `x.>` must never widen `client.{{client.name}}.>` into `client.x.>.>`."""
    refused = await _refused(deployment, user="namer", password=PASSWORDS["namer"], name="x.>")
    assert AUTH_VIOLATION in refused
    nc = await deployment.connect(user="namer", password=PASSWORDS["namer"], name="good")
    try:
        info = await _user_info(nc)
    finally:
        await nc.close()
    permissions = info["permissions"]
    assert isinstance(permissions, dict)
    assert "client.good.>" in permissions["publish"]["allow"]
    assert decisions(service.metrics)[Reason.UNSAFE_TEMPLATE_VALUE] == 1


async def test_source_networks_are_enforced_by_the_service(
    deployment: Environment, service: App
) -> None:
    """nats-server ignores `src` for callout users, so the service checks it.

    docs/protocol.md#user-claims
    """
    assert AUTH_VIOLATION in await _refused(
        deployment, user="lan-only", password=PASSWORDS["lan-only"]
    )
    nc = await deployment.connect(user="local-only", password=PASSWORDS["local-only"])
    await nc.close()
    assert decisions(service.metrics)[Reason.SOURCE_NOT_ALLOWED] == 1


async def test_connection_types_are_enforced_by_the_service(
    deployment: Environment, service: App
) -> None:
    """A websocket-only user cannot log in over plain NATS."""
    assert AUTH_VIOLATION in await _refused(
        deployment, user="ws-only", password=PASSWORDS["ws-only"]
    )
    assert decisions(service.metrics)[Reason.CONNECTION_TYPE_NOT_ALLOWED] == 1
