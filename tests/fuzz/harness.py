"""One place that runs the request pipeline on arbitrary input and checks the invariant.

The invariant for every input: a typed rejection (no reply) or a decision; and a grant only
for a request that carries a correct credential of a policy user. Anything else — an
unhandled exception or a grant for a wrong credential — is a failure.

Everything here is fixed: keys come from fixed seeds and the clock stands still at `NOW`, so a
request written to a corpus today is still valid, decryptable and unexpired in every later
fuzzing process (a fuzzer that starts from expired seeds never gets past validation). The
password hash uses tiny argon2id parameters so a password login costs microseconds, not the
OWASP ~24 ms: the fuzzer spends its time in our code, not in the KDF.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import argon2

from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.errors import RequestRejectedError
from callout.policy.loader import load_policy
from callout.protocol import jwt, xkey
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole, verify
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import OpenedRequest, Pipeline
from callout.service.runtime import Runtime
from callout.testing import ServerSimulator

# 2030-01-01T00:00:00Z: the fixed "now" of every request the fuzzers build and check.
NOW = 1_893_456_000


def _raw_seed(label: str) -> bytes:
    return hashlib.sha256(f"callout-fuzz/{label}".encode()).digest()


USER_KEY = KeyPair(KeyRole.USER, _raw_seed("user"))
CONNECTION_KEY = KeyPair(KeyRole.USER, _raw_seed("connection"))  # the request's user_nkey
CALLOUT_ACCOUNT = KeyPair(KeyRole.ACCOUNT, _raw_seed("callout-account"))
ISSUER_KEY = KeyPair(KeyRole.ACCOUNT, _raw_seed("issuer"))
SERVICE_XKEY = CurveKeyPair(_raw_seed("service-xkey"))
SERVER = ServerSimulator(
    key=KeyPair(KeyRole.SERVER, _raw_seed("server")), xkey=CurveKeyPair(_raw_seed("server-xkey"))
)
PASSWORD = "fuzz-password"
NONCE = "FuzzNonce123"

# Tiny argon2id parameters: same code path as the OWASP ones, a thousandth of the cost.
_CHEAP = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=argon2.Type.ID)


class CheapVerifier(PasswordVerifier):
    """The real verifier, whose dummy verify (unknown users) uses a cheap hash too."""

    _cheap_dummy = _CHEAP.hash("never-a-password")

    async def verify_dummy(self, password: str) -> None:
        await self.verify(self._cheap_dummy, password)


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
  alice: {{password: "{_CHEAP.hash(PASSWORD)}", roles: [r]}}
  sensor: {{nkey: {USER_KEY.public_key}, roles: [r]}}
"""
    )
    return directory


POLICY = load_policy(_policy_dir())
ISSUER = ConfigModeIssuer(ISSUER_KEY, frozenset({"APP"}))
VERIFIER = CheapVerifier(max_workers=1)


def pipeline(encrypted: bool) -> Pipeline:
    runtime = Runtime(POLICY, ISSUER, SERVICE_XKEY if encrypted else None)
    return Pipeline(runtime=lambda: runtime, backends=[StaticBackend(VERIFIER)])


PLAIN = pipeline(False)
SEALED = pipeline(True)
# One event loop for every input (a new loop per input would cost more than the input).
LOOP = asyncio.new_event_loop()


@contextmanager
def fixed_clock() -> Iterator[None]:
    """`time.time()` returns `NOW` inside (the worker reads the wall clock itself)."""
    real = time.time
    time.time = lambda: float(NOW)
    try:
        yield
    finally:
        time.time = real


def valid_signature() -> str:
    return base64.b64encode(USER_KEY.sign(NONCE.encode())).decode()


def base_claims(kind: str, *, encrypted: bool) -> dict[str, Any]:
    """A valid request at `NOW`: an nkey login (signed nonce) or alice's password login."""
    if kind == "nkey":
        connect: dict[str, Any] = {"nkey": USER_KEY.public_key, "sig": valid_signature()}
        client: dict[str, Any] = {"nonce": NONCE, "name": "probe"}
    else:
        connect = {"user": "alice", "pass": PASSWORD if kind == "password" else "wrong"}
        client = {"name": "probe"}
    return SERVER.claims(
        now=NOW,
        connect=connect,
        client=client,
        encrypted=encrypted,
        user_nkey=CONNECTION_KEY.public_key,
        callout_account=CALLOUT_ACCOUNT.public_key,
    )


def sign(claims: dict[str, Any], *, encrypted: bool, key: KeyPair | None = None) -> bytes:
    """The request payload the server would send: signed, and sealed to the service."""
    token = jwt.encode(claims, key or SERVER.key, iat=NOW).encode()
    return xkey.seal(token, SERVER.xkey, SERVICE_XKEY.public_key) if encrypted else token


def credential_is_correct(opened: OpenedRequest) -> bool:
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


def check_reply(opened: OpenedRequest, reply: bytes) -> str:
    """Check a published answer to ``opened``: bound to its server and user nkey, sealed when
    the request was, a grant only for a correct credential. Returns 'denied' or 'allowed'."""
    if opened.server_xkey is not None:
        reply = xkey.open_box(reply, SERVER.xkey, SERVICE_XKEY.public_key)
    response = jwt.decode(reply.decode(), expected_type="authorization_response")
    assert response["sub"] == opened.request.user_nkey
    assert response["aud"] == opened.request.server.id
    if "jwt" not in response["nats"]:
        return "denied"
    assert credential_is_correct(opened), f"granted a wrong credential: {opened.request.connect!r}"
    user = jwt.decode(response["nats"]["jwt"], expected_type="user")
    assert user["sub"] == opened.request.user_nkey
    for subject in user["nats"].get("pub", {}).get("allow", []):
        tokens = subject.split(".")
        assert all(tokens), subject
        assert ">" not in tokens[:-1], subject
        assert not any(("*" in t or ">" in t) and len(t) > 1 for t in tokens), subject
    return "allowed"


def check(payload: bytes, header: str | None, *, encrypted: bool) -> str:
    """Run one input through the pipeline; returns 'dropped', 'denied' or 'allowed'."""
    subject = SEALED if encrypted else PLAIN
    try:
        opened = subject.open(payload, header, now=NOW)
    except RequestRejectedError:
        return "dropped"
    decision = LOOP.run_until_complete(subject.decide(opened, now=NOW))
    reply = subject.answer(opened, decision, now=NOW)
    assert reply is not None, "reply mode always answers a decided request"
    outcome = check_reply(opened, reply)
    assert (outcome == "allowed") == decision.allowed
    return outcome
