"""The worker at its NATS port: what it publishes for a request, and where."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.credentials.passwords import hash_password
from callout.decision import Decision, Lane, Reason
from callout.observability.metrics import Metrics
from callout.observability.observer import ServiceObserver
from callout.policy.loader import load_policy
from callout.policy.snapshot import PolicySnapshot
from callout.protocol import jwt, xkey
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole, encode_public
from callout.protocol.port import MsgHandler
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import Pipeline
from callout.service.runtime import Runtime
from callout.service.worker import Worker
from callout.testing import ServerSimulator
from tests.counts import decisions

ISSUER = KeyPair.generate(KeyRole.ACCOUNT)
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
    subject: str = "s"


@dataclass
class _Connection:
    """The port boundary: records what the worker publishes."""

    published: list[tuple[str, bytes, dict[str, str] | None]] = field(default_factory=list)

    async def subscribe(
        self, subject: str, *, queue: str = "", cb: MsgHandler | None = None
    ) -> _Connection:
        return self

    async def unsubscribe(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.published.append((subject, payload, headers))


async def _worker(
    policy: PolicySnapshot, observer: ServiceObserver | None = None
) -> tuple[Worker, _Connection]:
    runtime = Runtime(policy, ConfigModeIssuer(ISSUER, frozenset({"APP"})), OWN_XKEY)
    pipeline = Pipeline(runtime=lambda: runtime, backends=[StaticBackend(VERIFIER)])
    worker = Worker(
        pipeline, subject="s", queue="q", max_concurrency=4, max_pending=8, observer=observer
    )
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
    [(subject, sealed, headers)] = connection.published
    assert headers is None
    assert subject == "_INBOX.reply"
    answer = jwt.decode(xkey.open_box(sealed, server.xkey, OWN_XKEY.public_key).decode())
    assert jwt.decode(answer["nats"]["jwt"])["name"] == "alice"


async def test_a_request_without_a_reply_subject_is_decided_but_not_answered(
    policy: PolicySnapshot,
) -> None:
    """Nowhere to answer: nothing is published, and the decision is still counted."""
    metrics = Metrics()
    worker, connection = await _worker(policy, ServiceObserver(metrics=metrics))
    await _handled(worker, _Msg(*_request(ServerSimulator()), ""))
    assert connection.published == []
    assert decisions(metrics) == {Reason.ALLOWED: 1}


@dataclass
class _Recorder:
    """The observer port: every report the worker makes, in order."""

    events: list[tuple[str, str, bool]] = field(default_factory=list)

    def decided(self, opened: Any, decision: Decision, *, seconds: float, replied: bool) -> None:
        self.events.append(("decided", decision.reason.value, replied))

    def dropped(self, reason: str, detail: str, *, seconds: float, **_: Any) -> None:
        self.events.append(("dropped", reason, False))


class _Raising:
    """A backend with a bug."""

    name = "static"

    async def authenticate(self, request: Any, policy: Any) -> None:
        raise KeyError("a bug")


def _recorded_worker(
    policy: PolicySnapshot, backends: list[Any] | None = None
) -> tuple[Worker, _Connection, _Recorder]:
    runtime = Runtime(policy, ConfigModeIssuer(ISSUER, frozenset({"APP"})), OWN_XKEY)
    pipeline = Pipeline(runtime=lambda: runtime, backends=backends or [StaticBackend(VERIFIER)])
    recorder = _Recorder()
    worker = Worker(
        pipeline, subject="s", queue="q", max_concurrency=4, max_pending=8, observer=recorder
    )
    return worker, _Connection(), recorder


@pytest.mark.parametrize(
    "header",
    [encode_public(KeyRole.CURVE, bytes(32)), "XNOTAKEY", CurveKeyPair.generate().seed],
    ids=["low-order", "garbage", "a-seed"],
)
async def test_an_unusable_server_xkey_is_a_typed_drop(policy: PolicySnapshot, header: str) -> None:
    """A low-order curve point (32 zero bytes) or a malformed key in Nats-Server-Xkey: a
    ``bad_xkey`` drop, reported once; never an exception inside the task."""
    worker, connection, recorder = _recorded_worker(policy)
    await worker.start(connection)
    payload, _ = _request(ServerSimulator())
    await _handled(worker, _Msg(payload, {"Nats-Server-Xkey": header}, "_INBOX.r"))
    assert recorder.events == [("dropped", "bad_xkey", False)]
    assert connection.published == []


async def test_a_backend_that_raises_is_one_internal_error_answered(
    policy: PolicySnapshot,
) -> None:
    worker, connection, recorder = _recorded_worker(policy, [_Raising()])
    await worker.start(connection)
    await _handled(worker, _Msg(*_request(ServerSimulator()), "_INBOX.r"))
    assert recorder.events == [("decided", "internal_error", True)]
    assert len(connection.published) == 1


class _BrokenAnswer(Pipeline):
    """The answer path fails (a signer bug) for the first answer only, or for every one."""

    def __init__(self, *args: Any, fail: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail = fail

    def answer(self, opened: Any, decision: Decision, *, now: int) -> bytes | None:
        if self.fail:
            self.fail -= 1
            raise ValueError("signer bug")
        return super().answer(opened, decision, now=now)


@pytest.mark.parametrize(("fail", "replied"), [(1, True), (2, False)])
async def test_a_failure_in_the_answer_path_is_one_internal_error(
    policy: PolicySnapshot, fail: int, replied: bool
) -> None:
    """Signing the decision fails: a signed internal_error deny goes out if signing still works
    at all, and either way exactly one report."""
    runtime = Runtime(policy, ConfigModeIssuer(ISSUER, frozenset({"APP"})), OWN_XKEY)
    pipeline = _BrokenAnswer(runtime=lambda: runtime, backends=[StaticBackend(VERIFIER)], fail=fail)
    recorder = _Recorder()
    worker = Worker(
        pipeline, subject="s", queue="q", max_concurrency=4, max_pending=8, observer=recorder
    )
    connection = _Connection()
    await worker.start(connection)
    server = ServerSimulator()
    await _handled(worker, _Msg(*_request(server), "_INBOX.r"))
    assert recorder.events == [("decided", "internal_error", replied)]
    assert len(connection.published) == int(replied)
    if replied:
        [(_, sealed, _)] = connection.published
        answer = jwt.decode(xkey.open_box(sealed, server.xkey, OWN_XKEY.public_key).decode())
        assert answer["nats"]["error"]


async def test_a_request_the_lane_cannot_decide_in_time_gets_a_signed_overloaded_deny(
    policy: PolicySnapshot,
) -> None:
    """The expensive lane's measured service time says no answer is possible before exp:
    refused at once, signed, one report; the password is never verified."""
    worker, connection, recorder = _recorded_worker(policy)
    worker.admission.lanes[Lane.EXPENSIVE].service = 60.0
    await worker.start(connection)
    server = ServerSimulator()
    await _handled(worker, _Msg(*_request(server), "_INBOX.r"))
    assert recorder.events == [("decided", "overloaded", True)]
    [(_, sealed, _)] = connection.published
    answer = jwt.decode(xkey.open_box(sealed, server.xkey, OWN_XKEY.public_key).decode())
    assert answer["nats"]["error"]
    assert worker.admission.lanes[Lane.EXPENSIVE].refused == 1


class _BrokenOpen(Pipeline):
    def open(self, payload: bytes, header_xkey: str | None, *, now: float) -> Any:
        raise TypeError("a parser bug")


async def test_a_fault_before_the_request_is_read_is_one_internal_error_drop(
    policy: PolicySnapshot,
) -> None:
    """Nothing to sign an answer for: a drop, reported once, with the reason internal_error."""
    runtime = Runtime(policy, ConfigModeIssuer(ISSUER, frozenset({"APP"})), OWN_XKEY)
    pipeline = _BrokenOpen(runtime=lambda: runtime, backends=[StaticBackend(VERIFIER)])
    recorder = _Recorder()
    worker = Worker(
        pipeline, subject="s", queue="q", max_concurrency=4, max_pending=8, observer=recorder
    )
    connection = _Connection()
    await worker.start(connection)
    await _handled(worker, _Msg(*_request(ServerSimulator()), "_INBOX.r"))
    assert recorder.events == [("dropped", "internal_error", False)]
    assert connection.published == []


class _Hanging:
    """A backend that never answers (a directory that hangs)."""

    name = "static"

    async def authenticate(self, request: Any, policy: Any) -> None:
        await asyncio.Event().wait()


async def test_a_request_cancelled_by_the_shutdown_is_one_shutdown_drop(
    policy: PolicySnapshot,
) -> None:
    """The drain timeout runs out with a request still undecided: it is cancelled and still
    reported exactly once (audit and metric), as a ``shutdown`` drop."""
    worker, connection, recorder = _recorded_worker(policy, [_Hanging()])
    await worker.start(connection)
    await worker._on_message(_Msg(*_request(ServerSimulator()), "_INBOX.r"))
    await asyncio.sleep(0.05)  # the request is in the backend now
    await worker.stop(grace=0.1)
    assert recorder.events == [("dropped", "shutdown", False)]
    assert worker.cancelled == 1
    assert connection.published == []
