"""The pipeline on plain values: what gets answered, how, and what gets silence."""

from __future__ import annotations

import pytest

from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.credentials.passwords import hash_password
from callout.decision import Decision, DropReason, Identity, Reason
from callout.errors import BackendUnavailableError, RequestRejectedError
from callout.policy.loader import load_policy
from callout.policy.snapshot import PolicySnapshot
from callout.protocol import jwt, xkey
from callout.protocol.claims import AuthRequest
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import Pipeline, open_request
from callout.service.runtime import Runtime
from callout.settings import DenyMode
from callout.testing import ServerSimulator
from tests.vectors import load

NOW = 1_800_000_000
ISSUER = KeyPair.generate(KeyRole.ACCOUNT)
SERVICE_XKEY = CurveKeyPair.generate()


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> PolicySnapshot:
    directory = tmp_path_factory.mktemp("policy")
    (directory / "p.yaml").write_text(
        f"""
version: 1
defaults: {{account: APP}}
roles:
  app: {{publish: {{allow: ["app.>"]}}, subscribe: {{allow: ["app.>"]}}}}
users:
  alice: {{password: "{hash_password("pw")}", roles: [app]}}
  elsewhere: {{password: "{hash_password("pw")}", roles: [app], account: NOWHERE}}
  root: {{password: "{hash_password("pw")}", roles: [app], account: SYS}}
"""
    )
    return load_policy(directory)


@pytest.fixture
async def pipeline(policy: PolicySnapshot) -> Pipeline:
    issuer = ConfigModeIssuer(ISSUER, frozenset({"APP", "SYS"}))
    runtime = Runtime(policy, issuer, system_account="SYS")
    return Pipeline(
        runtime=lambda: runtime, backends=[StaticBackend(PasswordVerifier(max_workers=1))]
    )


def _drop_reason(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(RequestRejectedError) as caught:
        call()
    return caught.value.reason


async def test_an_allowed_login_is_answered_with_a_user_jwt_for_that_server_and_user(
    pipeline: Pipeline,
) -> None:
    """Response aud = server id, sub = user_nkey; user JWT aud = account name.

    docs/protocol.md#the-response
    """
    server = ServerSimulator()
    payload, header = server.request(now=NOW, connect={"user": "alice", "pass": "pw"})
    opened = pipeline.open(payload, header, now=NOW)
    decision = await pipeline.decide(opened, now=NOW)
    assert decision.reason is Reason.ALLOWED
    reply = pipeline.answer(opened, decision, now=NOW)
    assert reply is not None
    response = jwt.decode(reply.decode(), expected_type="authorization_response")
    assert response["aud"] == server.key.public_key
    assert response["sub"] == opened.request.user_nkey
    assert response["iss"] == ISSUER.public_key
    user = jwt.decode(response["nats"]["jwt"], expected_type="user")
    assert user["aud"] == "APP"
    assert user["sub"] == opened.request.user_nkey
    assert user["iss"] == ISSUER.public_key
    assert user["nats"]["pub"] == {"allow": ["app.>"]}


async def test_a_denial_is_a_signed_error_with_a_generic_text(pipeline: Pipeline) -> None:
    """The precise reason is ours to log; the server only gets a generic text."""
    payload, header = ServerSimulator().request(now=NOW, connect={"user": "alice", "pass": "nope"})
    opened = pipeline.open(payload, header, now=NOW)
    decision = await pipeline.decide(opened, now=NOW)
    assert decision.reason is Reason.BAD_CREDENTIALS
    reply = pipeline.answer(opened, decision, now=NOW)
    assert reply is not None
    response = jwt.decode(reply.decode())
    assert response["nats"]["error"] == "not authorized"
    assert "jwt" not in response["nats"]


async def test_drop_mode_answers_a_denial_with_silence(pipeline: Pipeline) -> None:
    """Operators may prefer making attackers wait out the server timeout."""
    pipeline.deny_mode = DenyMode.DROP
    payload, header = ServerSimulator().request(now=NOW, connect={"user": "alice", "pass": "nope"})
    opened = pipeline.open(payload, header, now=NOW)
    decision = await pipeline.decide(opened, now=NOW)
    assert pipeline.answer(opened, decision, now=NOW) is None


async def test_an_account_the_issuer_does_not_know_is_refused(pipeline: Pipeline) -> None:
    """The service never places a user into an account that is not configured."""
    payload, header = ServerSimulator().request(
        now=NOW, connect={"user": "elsewhere", "pass": "pw"}
    )
    decision = await pipeline.decide(pipeline.open(payload, header, now=NOW), now=NOW)
    assert decision.reason is Reason.ACCOUNT_NOT_ALLOWED


async def test_the_system_account_needs_explicit_permission(pipeline: Pipeline) -> None:
    """Landing in SYS gives control of the server; only an explicit policy flag allows it."""
    payload, header = ServerSimulator().request(now=NOW, connect={"user": "root", "pass": "pw"})
    decision = await pipeline.decide(pipeline.open(payload, header, now=NOW), now=NOW)
    assert decision.reason is Reason.ACCOUNT_NOT_ALLOWED


async def test_a_backend_outage_fails_closed_with_its_own_reason(policy: PolicySnapshot) -> None:
    """An unreachable directory is a deny with a distinct reason, never an allow."""

    class Down:
        name = "ldap"

        async def authenticate(
            self, request: AuthRequest, policy: PolicySnapshot
        ) -> Identity | Decision | None:
            raise BackendUnavailableError("ldap", "connection refused")

    runtime = Runtime(policy, ConfigModeIssuer(ISSUER, frozenset({"APP"})))
    pipeline = Pipeline(runtime=lambda: runtime, backends=[Down()])
    payload, header = ServerSimulator().request(now=NOW, connect={"user": "alice", "pass": "pw"})
    decision = await pipeline.decide(pipeline.open(payload, header, now=NOW), now=NOW)
    assert decision.reason is Reason.BACKEND_UNAVAILABLE
    assert not decision.allowed


def test_an_expired_request_gets_no_reply() -> None:
    """A late answer is useless and a replayed request is an attack: neither is worked on."""
    payload, header = ServerSimulator().request(now=NOW - 10, connect={"user": "alice"})
    assert _drop_reason(lambda: open_request(payload, header, None, now=NOW)) == DropReason.EXPIRED


def test_a_request_not_signed_by_its_server_gets_no_reply() -> None:
    """iss must be the server key named in server_id.id."""
    server = ServerSimulator()
    claims = server.claims(now=NOW)
    claims["nats"]["server_id"]["id"] = KeyPair.generate(KeyRole.SERVER).public_key
    payload, _ = server.sign(claims, now=NOW)
    assert (
        _drop_reason(lambda: open_request(payload, None, None, now=NOW)) == DropReason.WRONG_ISSUER
    )


def test_a_request_with_the_wrong_audience_gets_no_reply() -> None:
    server = ServerSimulator()
    claims = server.claims(now=NOW)
    claims["aud"] = "something-else"
    payload, _ = server.sign(claims, now=NOW)
    assert _drop_reason(lambda: open_request(payload, None, None, now=NOW)) == DropReason.MALFORMED


def test_a_tampered_request_gets_no_reply() -> None:
    """A flipped byte in the signature means someone other than the server wrote it."""
    payload, _ = ServerSimulator().request(now=NOW)
    tampered = payload[:-3] + (b"A" if payload[-3:-2] != b"A" else b"B") + payload[-2:]
    assert _drop_reason(lambda: open_request(tampered, None, None, now=NOW)) in (
        DropReason.BAD_SIGNATURE,
        DropReason.MALFORMED,
    )


def test_a_plaintext_request_is_refused_when_encryption_is_configured() -> None:
    """If we expect xkey, plaintext means a misconfigured or impersonated server."""
    payload, header = ServerSimulator().request(now=NOW)
    assert (
        _drop_reason(lambda: open_request(payload, header, SERVICE_XKEY, now=NOW))
        == DropReason.ENCRYPTION_MISMATCH
    )


def test_a_sealed_request_is_refused_without_an_xkey() -> None:
    payload, header = ServerSimulator().request(now=NOW, seal_for=SERVICE_XKEY.public_key)
    assert (
        _drop_reason(lambda: open_request(payload, header, None, now=NOW))
        == DropReason.ENCRYPTION_MISMATCH
    )


def test_a_header_xkey_that_differs_from_the_signed_one_is_refused() -> None:
    """The signed server_id.xkey must match the header, or the box's sender is unverified."""
    server = ServerSimulator()
    claims = server.claims(now=NOW, encrypted=True)
    claims["nats"]["server_id"]["xkey"] = CurveKeyPair.generate().public_key
    payload, header = server.sign(claims, now=NOW, seal_for=SERVICE_XKEY.public_key)
    assert (
        _drop_reason(lambda: open_request(payload, header, SERVICE_XKEY, now=NOW))
        == DropReason.ENCRYPTION_MISMATCH
    )


async def test_a_sealed_request_gets_a_sealed_answer_for_the_server(policy: PolicySnapshot) -> None:
    """The answer is sealed to the request's server xkey: only that server can open it."""
    runtime = Runtime(policy, ConfigModeIssuer(ISSUER, frozenset({"APP"})), SERVICE_XKEY)
    pipeline = Pipeline(
        runtime=lambda: runtime, backends=[StaticBackend(PasswordVerifier(max_workers=1))]
    )
    server = ServerSimulator()
    payload, header = server.request(
        now=NOW, connect={"user": "alice", "pass": "pw"}, seal_for=SERVICE_XKEY.public_key
    )
    opened = pipeline.open(payload, header, now=NOW)
    reply = pipeline.answer(opened, await pipeline.decide(opened, now=NOW), now=NOW)
    assert reply is not None
    assert xkey.is_sealed(reply)
    response = jwt.decode(xkey.open_box(reply, server.xkey, SERVICE_XKEY.public_key).decode())
    assert "jwt" in response["nats"]


def test_the_request_claims_of_a_real_capture_parse() -> None:
    """The typed view reads what a real server sends (user, pass, client info)."""
    claims = load("config_mode/01_userpass_request.decoded.json")
    claims = claims.get("claims", claims)
    request = AuthRequest.from_claims(claims)
    assert request.connect.user == "alice"
    assert request.client.kind == "Client"
    assert "alicepw" not in repr(request)


async def test_a_login_without_credentials_and_nonce_says_why_nkeys_were_not_sent(
    pipeline: Pipeline,
) -> None:
    """An nkey client facing a server without a nonce sends nothing: the audit must say so."""
    payload, header = ServerSimulator().request(now=NOW)
    decision = await pipeline.decide(pipeline.open(payload, header, now=NOW), now=NOW)
    assert decision.reason is Reason.NO_CREDENTIALS
    assert "the server sent no nonce" in decision.detail
    assert "nkey user" in decision.detail


async def test_a_login_no_backend_takes_names_what_was_sent_not_its_value(
    pipeline: Pipeline,
) -> None:
    """A token nobody accepts: the detail names the kind of credential, never the secret."""
    connect = {"auth_token": "nac_abc_secretvalue"}
    payload, header = ServerSimulator().request(now=NOW, connect=connect)
    decision = await pipeline.decide(pipeline.open(payload, header, now=NOW), now=NOW)
    assert decision.reason is Reason.NO_CREDENTIALS
    assert decision.detail == "no configured backend accepts this login (sent: token)"


async def test_a_client_certificate_no_backend_takes_is_named_in_the_detail(
    pipeline: Pipeline,
) -> None:
    """With `verify: true` every client presents a certificate: without a cert backend the
    audit says a certificate was sent, not that nothing was."""
    server = ServerSimulator()
    claims = server.claims(now=NOW)
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    claims["nats"]["client_tls"] = {"version": "1.3", "verified_chains": [[pem]]}
    payload, header = server.sign(claims, now=NOW)
    decision = await pipeline.decide(pipeline.open(payload, header, now=NOW), now=NOW)
    assert decision.reason is Reason.NO_CREDENTIALS
    assert decision.detail == "no configured backend accepts this login (sent: certificate)"
