"""Micro-benchmarks of the inline driver: a whole cached-password, token or nkey login through
`Worker._on_message` (open, throttle, decide, sign, hand the reply to the connection, then the
audit line and the metrics), with the service's observer and a recording connection.

They report times and never assert them; each asserts that every login was answered inline,
with no task created, so a change that sends these logins back to a task fails here in CI.
Compare with ``tests/benchmarks/test_hot_path.py`` (the pipeline alone) and with the floor
scenario of ``callout bench`` (README, Performance).
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import pytest

from callout.observability.audit import AuditLog
from callout.observability.metrics import Metrics
from callout.observability.observer import ServiceObserver
from callout.service.runtime import Runtime
from callout.service.throttle import Throttle
from callout.testing import ServerSimulator
from tests.unit.service.test_inline import (
    NONCE,
    SENSOR,
    TOKEN,
    _Log,
    _Msg,
    _worker,
    inline_runtime,
)

pytestmark = pytest.mark.benchmark(group="inline path", min_rounds=20, max_time=0.3, warmup=False)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return inline_runtime(tmp_path_factory.mktemp("policy"))


def _connect(kind: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if kind == "password-cached":
        return {"user": "alice", "pass": "pw"}, None
    if kind == "token":
        return {"auth_token": TOKEN.text}, None
    sig = base64.b64encode(SENSOR.sign(NONCE.encode())).decode()
    return {"nkey": SENSOR.public_key, "sig": sig}, {"nonce": NONCE}


@pytest.mark.parametrize("kind", ["password-cached", "token", "nkey"])
def test_an_inline_login(benchmark: Any, runtime: Runtime, kind: str) -> None:
    connect, client = _connect(kind)
    server = ServerSimulator()
    messages = iter(
        [
            _Msg(server.request(now=int(time.time()), timeout=600, **fields)[0], None, "_INBOX.r")
            for fields in [{"connect": connect, "client": client}] * 400
        ]
    )
    throttle = Throttle(window=60, max_per_principal=10, max_per_ip=100)
    worker, connection, _ = _worker(runtime, throttle)
    worker.observer = ServiceObserver(metrics=Metrics(), audit=AuditLog(log=False))
    loop = asyncio.new_event_loop()

    sent = [0]

    async def one() -> None:
        sent[0] += 1
        await worker._on_message(next(messages))
        await asyncio.sleep(0)  # the report queued behind the reply

    try:
        loop.run_until_complete(worker.start(connection))
        loop.run_until_complete(one())  # a password login's first verification (a task)
        loop.run_until_complete(worker.stop(grace=5.0))
        loop.run_until_complete(worker.start(connection))
        before, sent[0] = worker.inline, 0
        benchmark.pedantic(lambda: loop.run_until_complete(one()), rounds=200, iterations=1)
        assert worker.in_flight == 0
        assert sent[0] >= 1  # 200 rounds, or 1 with --benchmark-disable
        assert worker.inline - before == sent[0]
        assert isinstance(connection, _Log)
        assert connection.kinds().count("published") == sent[0] + 1
    finally:
        loop.run_until_complete(worker.stop(grace=5.0))
        loop.close()
