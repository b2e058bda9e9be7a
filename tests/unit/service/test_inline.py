"""The inline driver: a request that needs no await is answered in the subscription callback,
with no task, the same checks, throttle and reports as the task driver; the reply is handed to
the connection before the audit line and the metrics run.

These also guard the fast path in CI (they count tasks and inline answers, never time)."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog

from callout.backends.cache import CachedBackend, DecisionCache
from callout.backends.chain import BackendReport, BackendStats, ReportedBackend
from callout.backends.oidc import OidcBackend
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.backends.tokens import TokenBackend
from callout.credentials.passwords import hash_password
from callout.credentials.tokens import hmac_hash, new_token
from callout.decision import Decision
from callout.policy.loader import load_policy
from callout.protocol import jwt
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.protocol.port import MsgHandler
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import Pipeline
from callout.service.runtime import Runtime
from callout.service.throttle import Throttle
from callout.service.worker import Worker
from callout.settings import OidcBackendSettings
from callout.testing import ServerSimulator
from tests.integration.backends.idp import AUDIENCE, SigningKey, claims, mint
from tests.integration.backends.idp import ISSUER as IDP

ISSUER = KeyPair.generate(KeyRole.ACCOUNT)
SENSOR = KeyPair.generate(KeyRole.USER)
PEPPER = b"inline-test-pepper-0123456789abcdef-0123"
TOKEN = new_token("nac", "inline")
NONCE = "inline-nonce-0123"
VERIFIER = PasswordVerifier(max_workers=1)


@dataclass
class _Msg:
    data: bytes
    headers: dict[str, str] | None
    reply: str
    subject: str = "s"


@dataclass
class _Log:
    """The connection and the observer in one ordered log: what happened first."""

    events: list[tuple[str, Any]] = field(default_factory=list)

    async def subscribe(
        self, subject: str, *, queue: str = "", cb: MsgHandler | None = None
    ) -> _Log:
        return self

    async def unsubscribe(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    async def publish(
        self, subject: str, payload: bytes = b"", reply: str = "", headers: Any = None
    ) -> None:
        self.events.append(("published", payload))

    def decided(self, opened: Any, decision: Decision, *, seconds: float, replied: bool) -> None:
        bound = structlog.contextvars.get_contextvars()
        self.events.append(("decided", (decision.reason.value, bound.get("request_id"))))

    def dropped(self, reason: str, detail: str, *, seconds: float, **_: Any) -> None:
        self.events.append(("dropped", reason))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


def inline_runtime(directory: Path) -> Runtime:
    """A policy with a password user, an nkey user, a token and a group, in account APP."""
    (directory / "p.yaml").write_text(
        f"""
version: 1
defaults: {{account: APP}}
users:
  alice: {{password: "{hash_password("pw")}", publish: {{allow: ["app.>"]}}}}
  sensor: {{nkey: {SENSOR.public_key}, publish: {{allow: ["app.>"]}}}}
tokens:
  {TOKEN.id}: {{hash: "{hmac_hash(PEPPER, TOKEN.text)}", owner: ci, publish: {{allow: ["a"]}}}}
roles:
  app: {{publish: {{allow: ["app.>"]}}}}
groups:
  "idp:ops": {{roles: [app]}}
"""
    )
    return Runtime(load_policy(directory), ConfigModeIssuer(ISSUER, frozenset({"APP"})))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return inline_runtime(tmp_path_factory.mktemp("policy"))


def _worker(
    runtime: Runtime, throttle: Throttle | None = None
) -> tuple[Worker, _Log, list[BackendReport]]:
    reports: list[BackendReport] = []
    stats = BackendStats()
    stats.observers.append(reports.append)
    cache = DecisionCache(ttl=60, max_entries=16)
    chain = [
        ReportedBackend(TokenBackend(PEPPER, VERIFIER), stats),
        ReportedBackend(CachedBackend(StaticBackend(VERIFIER), cache), stats),
    ]
    pipeline = Pipeline(runtime=lambda: runtime, backends=chain)
    recorder = _Log()
    worker = Worker(
        pipeline,
        subject="s",
        queue="q",
        max_concurrency=4,
        max_pending=8,
        observer=recorder,
        throttle=throttle,
    )
    return worker, recorder, reports


def _msg(connect: dict[str, Any], client: dict[str, Any] | None = None) -> _Msg:
    # 30 s to answer, not the server's 2 s: a KDF on a loaded CI machine must not expire here
    payload, _ = ServerSimulator().request(
        now=int(time.time()), timeout=30, connect=connect, client=client
    )
    return _Msg(payload, None, "_INBOX.r")


def _nkey_login() -> _Msg:
    sig = base64.b64encode(SENSOR.sign(NONCE.encode())).decode()
    return _msg({"nkey": SENSOR.public_key, "sig": sig}, {"nonce": NONCE})


async def _settled(worker: Worker) -> None:
    await worker.stop(grace=5.0)  # waits for tasks; the reports queued behind replies run


def _granted(payload: bytes) -> str:
    return str(jwt.decode(jwt.decode(payload.decode())["nats"]["jwt"])["name"])


@pytest.mark.parametrize(
    ("login", "name"),
    [
        (_nkey_login, "sensor"),
        (lambda: _msg({"auth_token": TOKEN.text}), TOKEN.id),
    ],
    ids=["nkey", "token"],
)
async def test_a_login_needing_no_await_is_answered_inline_before_it_is_reported(
    runtime: Runtime, login: Any, name: str
) -> None:
    worker, log, reports = _worker(runtime)
    await worker.start(log)
    await worker._on_message(login())
    assert worker.in_flight == 0  # no task
    assert worker.inline == 1
    assert log.kinds() == ["published"]  # the reply first, the report after it
    assert _granted(log.events[0][1]) == name
    await _settled(worker)
    assert log.kinds() == ["published", "decided"]
    reason, request_id = log.events[1][1]
    assert reason == "allowed"
    assert request_id is not None  # the report runs with the request's log bindings
    assert [report.reason.value for report in reports] == ["allowed"]


async def test_a_password_login_awaits_the_kdf_once_then_cache_hits_are_inline(
    runtime: Runtime,
) -> None:
    worker, log, reports = _worker(runtime)
    await worker.start(log)
    await worker._on_message(_msg({"user": "alice", "pass": "pw"}))
    assert worker.in_flight == 1  # the KDF: a task
    assert worker.inline == 0
    await _settled(worker)
    await worker.start(log)
    for _ in range(3):
        await worker._on_message(_msg({"user": "alice", "pass": "pw"}))
    assert worker.in_flight == 0
    assert worker.inline == 3
    await _settled(worker)
    # back to back in one loop iteration: the three replies first, their reports after
    assert log.kinds() == ["published", "decided"] + ["published"] * 3 + ["decided"] * 3
    assert {_granted(payload) for kind, payload in log.events if kind == "published"} == {"alice"}
    assert len(reports) == 4  # the cache hits are reported like the verification


async def test_a_wrong_password_still_awaits_its_verification(runtime: Runtime) -> None:
    """Only identities are cached: a wrong password after a good one is verified again."""
    worker, log, _ = _worker(runtime)
    await worker.start(log)
    await worker._on_message(_msg({"user": "alice", "pass": "pw"}))
    await _settled(worker)
    await worker.start(log)
    await worker._on_message(_msg({"user": "alice", "pass": "wrong"}))
    assert worker.in_flight == 1
    await _settled(worker)
    assert [v[0] for k, v in log.events if k == "decided"] == ["allowed", "bad_credentials"]


async def test_the_throttle_counts_inline_logins_and_refuses_inline(runtime: Runtime) -> None:
    """A wrong nkey signature is decided inline and counted as a failure; once the limit is
    reached, the next attempt is refused inline (a throttled drop), no task either way."""
    throttle = Throttle(window=60, max_per_principal=2, max_per_ip=100)
    worker, log, _ = _worker(runtime, throttle)
    await worker.start(log)
    forged = _msg({"nkey": SENSOR.public_key, "sig": "AAAA"}, {"nonce": NONCE})
    for _ in range(3):
        await worker._on_message(forged)
    assert worker.in_flight == 0
    await _settled(worker)
    assert log.kinds().count("published") == 2
    assert [v for k, v in log.events if k == "dropped"] == ["throttled"]
    denied = [v[0] for k, v in log.events if k == "decided"]
    assert denied == ["bad_nkey_signature"] * 2


class _CountingCache(DecisionCache):
    keys = 0

    def key(self, *parts: str) -> bytes:
        self.keys += 1
        return super().key(*parts)


async def test_a_cache_hit_computes_its_cache_key_once(runtime: Runtime) -> None:
    """The lane and the lookup ask about the same request: one HMAC serves both."""
    cache = _CountingCache(ttl=60, max_entries=4)
    backend = CachedBackend(StaticBackend(VERIFIER), cache)
    pipeline = Pipeline(runtime=lambda: runtime, backends=[backend])
    log = _Log()
    worker = Worker(
        pipeline, subject="s", queue="q", max_concurrency=2, max_pending=4, observer=log
    )
    await worker.start(log)
    await worker._on_message(_msg({"user": "alice", "pass": "pw"}))
    await _settled(worker)
    await worker.start(log)
    cache.keys = 0
    await worker._on_message(_msg({"user": "alice", "pass": "pw"}))
    assert worker.inline == 1
    assert cache.keys == 1
    await _settled(worker)


async def test_a_bearer_jwt_whose_key_is_loaded_is_answered_inline(
    runtime: Runtime, tmp_path: Path
) -> None:
    """The first OIDC login loads the issuer's keys in a task (a file read off the loop);
    the next ones, with the key loaded and fresh, are decided in the callback: no task."""
    key = SigningKey.ec("ec-1")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.jwk()]}))
    settings = OidcBackendSettings.model_validate(
        {
            "type": "oidc",
            "issuers": [
                {
                    "issuer": IDP,
                    "audience": [AUDIENCE],
                    "jwks_file": str(jwks),
                    "group_prefix": "idp:",
                    "allow_any_subject": "tests: one stand-in IdP",
                }
            ],
        }
    )
    oidc = OidcBackend.from_settings(settings)
    reports: list[BackendReport] = []
    stats = BackendStats()
    stats.observers.append(reports.append)
    pipeline = Pipeline(runtime=lambda: runtime, backends=[ReportedBackend(oidc, stats)])
    log = _Log()
    worker = Worker(
        pipeline, subject="s", queue="q", max_concurrency=2, max_pending=4, observer=log
    )
    try:
        await worker.start(log)
        await worker._on_message(_msg({"jwt": mint(key, claims(groups=["ops"]))}))
        assert worker.in_flight == 1  # no keys yet: the load awaits, in a task
        await _settled(worker)
        await worker.start(log)
        for _ in range(2):
            await worker._on_message(_msg({"jwt": mint(key, claims(groups=["ops"]))}))
        assert worker.in_flight == 0
        assert worker.inline == 2  # both logins after the load
        await _settled(worker)
    finally:
        oidc.close()
    published = [payload for kind, payload in log.events if kind == "published"]
    assert [_granted(payload) for payload in published] == ["svc-1"] * 3
    assert [report.reason.value for report in reports] == ["allowed"] * 3
