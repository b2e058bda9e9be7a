"""Micro-benchmarks of the per-request hot path (pytest-benchmark).

They run in CI for the numbers in the report (compare runs with `--benchmark-autosave` and
`--benchmark-compare`), never as timed assertions; each checks its result, so a broken hot
path fails here too. End-to-end figures come from `callout bench` (README, Performance).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.decision import Decision, Reason
from callout.policy import load_policy
from callout.protocol import jwt, xkey
from callout.protocol.claims import AuthRequest
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import OpenedRequest, Pipeline
from callout.service.runtime import Runtime
from callout.testing import ServerSimulator

pytestmark = pytest.mark.benchmark(group="hot path", min_rounds=20, max_time=0.3, warmup=False)

USER = KeyPair.generate(KeyRole.USER)
NONCE = "bench-nonce-0123"
NOW = int(time.time())


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    directory: Path = tmp_path_factory.mktemp("bench-policy")
    (directory / "p.yaml").write_text(
        f"""version: 1
defaults: {{account: APP}}
roles:
  app:
    publish: {{allow: ["app.>", "user.{{{{user.name}}}}.>"]}}
    subscribe: {{allow: ["app.>", "_INBOX.>"]}}
users:
  sensor: {{nkey: {USER.public_key}, roles: [app]}}
"""
    )
    verifier = PasswordVerifier(max_workers=1)
    issuer = ConfigModeIssuer(KeyPair.generate(KeyRole.ACCOUNT), frozenset({"APP"}))
    runtime = Runtime(load_policy(directory), issuer, CurveKeyPair.generate())
    yield Pipeline(runtime=lambda: runtime, backends=[StaticBackend(verifier)])
    verifier.close()


def _request(*, sealed_for: str | None = None) -> tuple[ServerSimulator, bytes, str | None]:
    server = ServerSimulator()
    sig = base64.b64encode(USER.sign(NONCE.encode())).decode()
    payload, header = server.request(
        now=NOW,
        seal_for=sealed_for,
        connect={"nkey": USER.public_key, "sig": sig},
        client={"nonce": NONCE},
    )
    return server, payload, header


def _plain(pipeline: Pipeline) -> Pipeline:
    """The same pipeline without an xkey: for plaintext requests."""
    runtime = pipeline.runtime()
    return Pipeline(
        runtime=lambda: Runtime(runtime.policy, runtime.issuer), backends=pipeline.backends
    )


def _decided(pipeline: Pipeline) -> tuple[Pipeline, OpenedRequest, Decision]:
    """A plaintext nkey login opened and decided, ready to answer or audit."""
    plain = _plain(pipeline)
    _, payload, _ = _request()
    opened = plain.open(payload, None, now=NOW)
    loop = asyncio.new_event_loop()
    try:
        return plain, opened, loop.run_until_complete(plain.decide(opened, now=NOW))
    finally:
        loop.close()


def test_decoding_and_verifying_a_request(benchmark: Any) -> None:
    """jwt.decode + the typed view: one Ed25519 verify, JSON, base64."""
    _, payload, _ = _request()
    token = payload.decode()
    request = benchmark(lambda: AuthRequest.from_claims(jwt.decode(token)))
    assert request.connect.nkey == USER.public_key


def test_a_whole_nkey_login_plain(benchmark: Any, pipeline: Pipeline) -> None:
    """open → decide → answer for an nkey login, as the worker runs it (no NATS)."""
    _, payload, _ = _request()
    loop = asyncio.new_event_loop()
    plain = _plain(pipeline)

    def login() -> bytes | None:
        opened = plain.open(payload, None, now=NOW)
        decision = loop.run_until_complete(plain.decide(opened, now=NOW))
        assert decision.reason is Reason.ALLOWED
        return plain.answer(opened, decision, now=NOW)

    try:
        reply = benchmark(login)
    finally:
        loop.close()
    assert reply is not None
    assert reply.startswith(b"eyJ")


def test_a_whole_nkey_login_sealed(benchmark: Any, pipeline: Pipeline) -> None:
    """The same with xkey: one box opened, one sealed."""
    own = pipeline.runtime().xkey
    assert own is not None
    server, payload, header = _request(sealed_for=own.public_key)
    loop = asyncio.new_event_loop()

    def login() -> bytes | None:
        opened = pipeline.open(payload, header, now=NOW)
        decision = loop.run_until_complete(pipeline.decide(opened, now=NOW))
        return pipeline.answer(opened, decision, now=NOW)

    try:
        reply = benchmark(login)
    finally:
        loop.close()
    assert reply is not None
    opened_reply = xkey.open_box(reply, server.xkey, own.public_key)
    assert jwt.decode(opened_reply.decode())["aud"] == server.key.public_key


def test_signing_a_grant(benchmark: Any, pipeline: Pipeline) -> None:
    """User JWT + response JWT: two Ed25519 signatures, two jti hashes."""
    plain, opened, decision = _decided(pipeline)
    reply = benchmark(lambda: plain.answer(opened, decision, now=NOW))
    assert reply is not None
    response = jwt.decode(reply.decode(), expected_type="authorization_response")
    assert response["sub"] == opened.request.user_nkey


def test_writing_an_audit_line(benchmark: Any, pipeline: Pipeline) -> None:
    """The per-request audit event: built, redacted, rendered as JSON and written."""
    from callout.observability.audit import AuditLog, decision_event  # noqa: PLC0415
    from callout.testing import captured_logs  # noqa: PLC0415

    _, opened, decision = _decided(pipeline)
    audit = AuditLog()

    def emit() -> None:
        event = decision_event(
            opened.request, decision, policy_digest="d", seconds=0.001, replied=True
        )
        audit.emit(event)

    with captured_logs("info") as output:
        benchmark(emit)
    last = output.getvalue().splitlines()[-1]
    assert '"decision":"allow"' in last
    assert '"principal":"sensor"' in last
