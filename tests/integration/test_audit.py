"""Audit events (log and JetStream) and the proof that no credential reaches a log line."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import nats
import pytest
from structlog.testing import capture_logs

from callout.backends.base import Backend
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.decision import Decision, Identity
from callout.policy.snapshot import PolicySnapshot
from callout.protocol import jwt
from callout.protocol.claims import AuthRequest
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.app import App
from callout.testing import captured_logs
from tests.counts import audit_published
from tests.integration.config_environment import ConfigEnvironment
from tests.integration.conftest import ENVIRONMENTS
from tests.integration.environments import Environment, connect
from tests.integration.rawclient import raw_connect
from tests.integration.users import PASSWORDS, SENSOR

pytestmark = pytest.mark.integration

SCHEMA_V1 = {
    "audit_version",
    "decision",
    "reason",
    "backend",
    "principal",
    "account",
    "permissions_digest",
    "expires",
    "request_id",
    "server_id",
    "server_name",
    "client_host",
    "client_id",
    "client_name",
    "client_lang",
    "client_version",
    "client_kind",
    "client_type",
    "policy_digest",
    "duration_s",
    "replied",
    "detail",
}
one_environment = pytest.mark.parametrize(
    "deployment", [ENVIRONMENTS[1]], indirect=True, ids=["accounts"]
)


@one_environment
async def test_every_decision_is_one_audit_event_in_the_documented_schema(
    deployment: Environment,
) -> None:
    """Security teams ship these events to their SIEM; the schema is a contract."""
    app = App(deployment.settings())
    await app.start()
    try:
        with capture_logs() as captured:
            nc = await connect(deployment.url, user="alice", password=PASSWORDS["alice"])
            await nc.close()
            await raw_connect(deployment.server.port, {"user": "alice", "pass": "wrong"})
        digest = app.current_runtime().policy.digest
    finally:
        await app.stop()
    events = [entry for entry in captured if entry["event"] == "auth_decision"]
    assert len(events) == 2
    for event in events:
        assert set(event) - {"event", "log_level", "logger"} == SCHEMA_V1
        assert event["logger"] == "callout.audit"
        assert event["audit_version"] == 1
        assert event["policy_digest"] == digest
        assert event["client_host"] == "127.0.0.1"
        assert event["request_id"]
        assert event["principal"] == "alice"
        assert event["backend"] == "static"
    allowed, denied = events
    assert (allowed["decision"], allowed["reason"], allowed["account"]) == (
        "allow",
        "allowed",
        "APP",
    )
    assert len(allowed["permissions_digest"]) == 16
    assert allowed["expires"] > 0
    assert (denied["decision"], denied["reason"], denied["account"]) == (
        "deny",
        "bad_credentials",
        "",
    )


@pytest.fixture
def jetstream_deployment(tmp_path: Path) -> Iterator[Environment]:
    env = ConfigEnvironment("accounts-jetstream", jetstream=True).start(tmp_path)
    try:
        yield env
    finally:
        env.stop()


async def _auth_client(deployment: Environment) -> nats.NATS:
    return await connect(deployment.url, **deployment.service_options())


async def test_audit_events_are_published_to_jetstream_and_acked(
    jetstream_deployment: Environment,
) -> None:
    """A durable, queryable audit trail without scraping logs."""
    deployment = jetstream_deployment
    admin = await _auth_client(deployment)
    try:
        js = admin.jetstream()
        await js.add_stream(name="CALLOUT_AUDIT", subjects=["callout.audit"])
        jetstream = {"enabled": True, "subject": "callout.audit", "stream": "CALLOUT_AUDIT"}
        app = App(deployment.settings(audit={"jetstream": jetstream}))
        await app.start()
        try:
            nc = await connect(deployment.url, user="alice", password=PASSWORDS["alice"])
            await nc.close()
            await raw_connect(deployment.server.port, {"user": "bob", "pass": "wrong"})
            assert app.audit_stream is not None
            for _ in range(100):
                if audit_published(app.metrics) == 2:
                    break
                await asyncio.sleep(0.02)
        finally:
            await app.stop()
        info = await js.stream_info("CALLOUT_AUDIT")
        assert info.state.messages == 2
        first = json.loads((await js.get_msg("CALLOUT_AUDIT", seq=1)).data)
        second = json.loads((await js.get_msg("CALLOUT_AUDIT", seq=2)).data)
    finally:
        await admin.close()
    assert set(first) == SCHEMA_V1
    assert (first["decision"], first["principal"]) == ("allow", "alice")
    assert (second["decision"], second["reason"], second["principal"]) == (
        "deny",
        "bad_credentials",
        "bob",
    )
    assert app.metrics.registry.get_sample_value("callout_audit_events_published_total") == 2


async def test_a_stuck_audit_stream_never_blocks_or_fails_a_login(
    jetstream_deployment: Environment,
) -> None:
    """Audit shipping is best effort: a stream that never acks costs events (counted), not
    logins, and not login latency."""
    deployment = jetstream_deployment
    admin = await _auth_client(deployment)
    blackhole = await admin.subscribe("blackhole.audit")  # takes publishes, never acks
    jetstream = {
        "enabled": True,
        "subject": "blackhole.audit",
        "buffer": 1,
        "publish_timeout": "5s",
    }
    settings = deployment.settings(
        audit={"jetstream": jetstream}, service={"drain_timeout": "500ms"}
    )
    app = App(settings)
    await app.start()
    try:
        started = asyncio.get_running_loop().time()
        for _ in range(4):
            nc = await connect(deployment.url, user="alice", password=PASSWORDS["alice"])
            await nc.close()
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        await app.stop()
        await blackhole.unsubscribe()
        await admin.close()
    assert elapsed < 2.5  # four logins; one stuck publish alone would take 5 s
    assert app.audit_stream is not None
    assert audit_published(app.metrics) == 0
    full = app.metrics.registry.get_sample_value(
        "callout_audit_events_dropped_total", {"reason": "buffer_full"}
    )
    assert full == 2  # one event in the publisher, one in the buffer, two dropped


class LeakyBackend:
    """A buggy backend that puts the client's token and a seed into its exception message:
    the redaction must still keep them out of the log."""

    name = "leaky"

    def __init__(self, seed: str) -> None:
        self.seed = seed

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        if request.connect.auth_token:
            raise RuntimeError(f"cannot parse {request.connect.auth_token} with {self.seed}")
        return None


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything the service logs, rendered as it would reach stdout (JSON, debug level)."""
    with captured_logs() as buffer:
        yield buffer


def _sign(seed: KeyPair):  # type: ignore[no-untyped-def]
    def sign(nonce: str) -> str:
        return base64.urlsafe_b64encode(seed.sign(nonce.encode())).decode().rstrip("=")

    return sign


async def test_no_credential_of_any_kind_reaches_a_log_line(
    deployment: Environment, log_output: io.StringIO
) -> None:
    """Logs are shipped widely; a password, token, JWT, signature or seed in them is a breach."""
    leaked_seed = KeyPair.generate(KeyRole.ACCOUNT).seed

    def chain(verifier: PasswordVerifier) -> Sequence[Backend]:
        return [LeakyBackend(leaked_seed), StaticBackend(verifier)]

    account = KeyPair.generate(KeyRole.ACCOUNT)
    user = KeyPair.generate(KeyRole.USER)
    user_jwt = jwt.encode(
        {"sub": user.public_key, "nats": {"type": "user", "version": 2}}, account, iat=1
    )
    bearer = jwt.encode({"sub": "robot", "nats": {"type": "user", "version": 2}}, account, iat=1)
    opaque = "cot_a1b2c3_" + "Zx9q" * 11
    secrets = {
        "password": PASSWORDS["alice"],
        "wrong password": "wrong-but-real-looking-password-7",
        "opaque token": opaque,
        "bearer JWT": bearer,
        "user JWT": user_jwt,
        "seed": leaked_seed,
        "sensor seed": SENSOR.seed,
        **deployment.secrets(),
    }
    app = App(
        deployment.settings(log={"level": "debug", "format": "json"}, throttle={"enabled": False}),
        backends=chain,
    )
    await app.start()
    signatures: list[str] = []

    def sensor_sign(nonce: str) -> str:
        signatures.append(_sign(SENSOR)(nonce))
        return signatures[-1]

    def user_sign(nonce: str) -> str:
        signatures.append(_sign(user)(nonce))
        return signatures[-1]

    try:
        nc = await deployment.connect(user="alice", password=PASSWORDS["alice"])
        await nc.close()
        port, fields = deployment.server.port, deployment.raw_fields
        await raw_connect(port, fields({"user": "alice", "pass": secrets["wrong password"]}))
        await raw_connect(port, fields({"auth_token": opaque}))
        await raw_connect(port, fields({"auth_token": bearer}))
        if deployment.nkey_logins:
            await raw_connect(port, {"nkey": SENSOR.public_key, "sig": sensor_sign})
        else:  # a per-client sentinel carries the only signature: the token path instead
            await raw_connect(port, fields({"auth_token": "nac_x_" + "Qw3r" * 11}))
        # nats-server passes a client JWT on only in operator mode; sent here all the same.
        await raw_connect(port, {"jwt": user_jwt, "sig": user_sign})
    finally:
        await app.stop()
    output = log_output.getvalue()
    # In operator mode nats-server refuses the stranger's user JWT itself (its account is
    # unknown), so that connect never reaches the service.
    vetted = deployment.server_checks_user_jwts
    assert output.count('"auth_decision"') == (5 if vetted else 6), output
    assert "decision_failed" in output  # the leaky backend's exception was logged ...
    assert "[redacted]" in output  # ... with the secrets in it replaced
    leaked = [name for name, secret in secrets.items() if secret in output]
    leaked += [f"signature {n}" for n, sig in enumerate(signatures) if sig in output]
    assert leaked == []
    assert len(signatures) == (1 if not deployment.nkey_logins else 2)
