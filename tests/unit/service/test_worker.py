"""The worker at its NATS port: what it publishes for a request, and where."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from callout.backends.passwords import PasswordVerifier, hash_password
from callout.backends.static import StaticBackend
from callout.policy.loader import load_policy
from callout.policy.snapshot import PolicySnapshot
from callout.protocol import jwt, xkey
from callout.protocol.nkeys import CurveKeyPair, KeyPair, Role
from callout.service.decision import Reason
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import Pipeline
from callout.service.runtime import Runtime
from callout.service.worker import Worker
from callout.testing import ServerSimulator

ISSUER = KeyPair.generate(Role.ACCOUNT)
OWN_XKEY = CurveKeyPair.generate()
ALICE = {"user": "alice", "pass": "pw"}
VERIFIER = PasswordVerifier(max_workers=1)


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> PolicySnapshot:
    directory = tmp_path_factory.mktemp("policy")
    (directory / "p.yaml").write_text(
        f"""
version: 1
defaults: {{account: APP}}
users:
  alice: {{password: "{hash_password("pw")}", publish: {{allow: ["app.>"]}}}}
"""
    )
    return load_policy(directory)


@dataclass
class _Msg:
    data: bytes
    headers: dict[str, str] | None
    reply: str


@dataclass
class _Connection:
    """The port boundary: records what the worker publishes."""

    published: list[tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    async def subscribe(self, subject: str, *, queue: str, cb: Any) -> _Connection:
        return self

    async def unsubscribe(self) -> None:
        pass

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        self.published.append((args, kwargs))


async def _worker(policy: PolicySnapshot) -> tuple[Worker, _Connection]:
    runtime = Runtime(policy, ConfigModeIssuer(ISSUER, frozenset({"APP"})), OWN_XKEY)
    pipeline = Pipeline(runtime=lambda: runtime, backends=[StaticBackend(VERIFIER)])
    worker = Worker(pipeline, subject="s", queue="q", max_concurrency=4, max_pending=8)
    connection = _Connection()
    await worker.start(connection)
    return worker, connection


def _request(server: ServerSimulator) -> tuple[bytes, dict[str, str]]:
    payload, header = server.request(
        now=int(time.time()), seal_for=OWN_XKEY.public_key, connect=ALICE
    )
    assert header is not None
    return payload, {"Nats-Server-Xkey": header}


async def _handled(worker: Worker, msg: _Msg) -> None:
    await worker._on_message(msg)
    await worker.stop(grace=5.0)  # waits for the request in flight


async def test_a_sealed_answer_goes_to_the_reply_subject_without_the_request_headers(
    policy: PolicySnapshot,
) -> None:
    """The server's xkey header is the request's, not ours: echoing it is wasted bytes."""
    worker, connection = await _worker(policy)
    server = ServerSimulator()
    await _handled(worker, _Msg(*_request(server), "_INBOX.reply"))
    [(args, kwargs)] = connection.published
    assert kwargs == {}
    subject, sealed = args
    assert subject == "_INBOX.reply"
    answer = jwt.decode(xkey.open_box(sealed, server.xkey, OWN_XKEY.public_key).decode())
    assert jwt.decode(answer["nats"]["jwt"])["name"] == "alice"


async def test_a_request_without_a_reply_subject_is_decided_but_not_answered(
    policy: PolicySnapshot,
) -> None:
    """Nowhere to answer: nothing is published, and the decision is still counted."""
    worker, connection = await _worker(policy)
    await _handled(worker, _Msg(*_request(ServerSimulator()), ""))
    assert connection.published == []
    assert worker.decisions == {Reason.ALLOWED: 1}
