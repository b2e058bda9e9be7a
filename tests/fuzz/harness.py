"""One place that runs the whole request path on arbitrary input and checks the invariant.

The invariant for every input: a typed rejection (no reply) or a decision; and a grant only
for a request that carries a correct credential of a policy user. Anything else — an
unhandled exception or a grant for a wrong credential — is a failure.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
import time
from pathlib import Path

from callout.backends.passwords import PasswordVerifier, hash_password
from callout.backends.static import StaticBackend
from callout.errors import RequestRejectedError
from callout.policy.loader import load_policy
from callout.protocol import jwt, xkey
from callout.protocol.nkeys import CurveKeyPair, KeyPair, Role, verify
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import OpenedRequest, Pipeline
from callout.service.runtime import Runtime
from callout.testing import ServerSimulator

NOW = int(time.time())
USER_KEY = KeyPair.generate(Role.USER)
PASSWORD = "fuzz-password"
NONCE = "FuzzNonce123"
SERVICE_XKEY = CurveKeyPair.generate()
SERVER = ServerSimulator()


def _policy_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="callout-fuzz-"))
    (directory / "policy.yaml").write_text(
        f"""version: 1
defaults: {{account: APP}}
roles:
  r:
    publish: {{allow: ["a.{{{{user.name}}}}.>", "c.{{{{client.name}}}}.>"]}}
    subscribe: {{allow: ["_INBOX.>"]}}
users:
  alice: {{password: "{hash_password(PASSWORD)}", roles: [r]}}
  sensor: {{nkey: {USER_KEY.public_key}, roles: [r]}}
"""
    )
    return directory


_POLICY = load_policy(_policy_dir())
_ISSUER = ConfigModeIssuer(KeyPair.generate(Role.ACCOUNT), frozenset({"APP"}))
_VERIFIER = PasswordVerifier(max_workers=1)


def pipeline(encrypted: bool) -> Pipeline:
    runtime = Runtime(_POLICY, _ISSUER, SERVICE_XKEY if encrypted else None)
    return Pipeline(runtime=lambda: runtime, backends=[StaticBackend(_VERIFIER)])


PLAIN = pipeline(False)
SEALED = pipeline(True)


def valid_signature() -> str:
    return base64.b64encode(USER_KEY.sign(NONCE.encode())).decode()


def _credential_is_correct(opened: OpenedRequest) -> bool:
    connect, client = opened.request.connect, opened.request.client
    if connect.nkey:
        if connect.nkey != USER_KEY.public_key or not client.nonce:
            return False
        for altchars in (b"+/", b"-_"):
            try:
                raw = base64.b64decode(
                    connect.sig + "=" * (-len(connect.sig) % 4), altchars=altchars
                )
            except ValueError:
                continue
            if verify(USER_KEY.public_key, client.nonce.encode("ascii", "replace"), raw):
                return True
        return False
    return connect.user == "alice" and connect.password == PASSWORD


def check(payload: bytes, header: str | None, *, encrypted: bool) -> str:
    """Run one input through the whole path; returns 'dropped', 'denied' or 'allowed'."""
    subject = SEALED if encrypted else PLAIN
    try:
        opened = subject.open(payload, header, now=NOW)
    except RequestRejectedError:
        return "dropped"
    decision = asyncio.run(subject.decide(opened, now=NOW))
    reply = subject.answer(opened, decision, now=NOW)
    assert reply is not None, "reply mode always answers a decided request"
    if opened.server_xkey is not None:
        reply = xkey.open_box(reply, SERVER.xkey, SERVICE_XKEY.public_key)
    response = jwt.decode(reply.decode(), expected_type="authorization_response")
    assert response["sub"] == opened.request.user_nkey
    assert response["aud"] == opened.request.server.id
    if not decision.allowed:
        assert "jwt" not in response["nats"]
        return "denied"
    assert _credential_is_correct(opened), f"granted a wrong credential: {opened.request.connect!r}"
    user = jwt.decode(response["nats"]["jwt"], expected_type="user")
    assert user["sub"] == opened.request.user_nkey
    for subject_ in user["nats"].get("pub", {}).get("allow", []):
        tokens = subject_.split(".")
        assert all(tokens), subject_
        assert ">" not in tokens[:-1], subject_
        assert not any(("*" in t or ">" in t) and len(t) > 1 for t in tokens), subject_
    return "allowed"
