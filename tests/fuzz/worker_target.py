"""The fuzz target through the `Worker`: subscription callback in, published reply out.

A fake NATS connection stands at the port boundary (it records the subscription callback and
the published replies); everything behind it is real: the worker's admission, throttle,
deadlines, the pipeline, the signer, the xkey box and the observer (metrics and audit events,
collected instead of logged). Only the worker's public surface is used: the constructor,
``start(nc)``, the subscription callback and ``in_flight``.

The invariant for every delivered message, on top of the pipeline's (`harness.check_reply`):
exactly one audit event; a reply exactly when the event says one was sent, sent to the
message's reply subject; a reply for every request the pipeline can open unless the event is a
drop; no reply for a request it cannot open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callout.decision import Reason
from callout.errors import RequestRejectedError
from callout.observability.audit import AuditLog
from callout.observability.metrics import Metrics
from callout.observability.observer import ServiceObserver
from callout.protocol.port import MsgHandler
from callout.protocol.xkey import HEADER as XKEY_HEADER
from callout.service.throttle import Attempt, Throttle
from callout.service.throttlekeys import principal_of
from callout.service.worker import Worker
from tests.fuzz.harness import LOOP, NOW, PLAIN, SEALED, check_reply, fixed_clock

SUBJECT = "$SYS.REQ.USER.AUTH"
REPLY = "_INBOX.fuzz.1"
THROTTLE_LIMIT = 3
_SETTLE_SECONDS = 5.0  # longer than any request's exp (NOW + 2 s) can keep it in the worker
_SETTLE_STEP = 0.0005
_BUSY_STEPS = 200
_SETTLE_STEPS = _BUSY_STEPS + int(_SETTLE_SECONDS / _SETTLE_STEP)
_METRICS = Metrics()


@dataclass
class Message:
    data: bytes
    headers: dict[str, str] | None
    reply: str = REPLY
    subject: str = SUBJECT

    async def respond(self, data: bytes) -> None:
        raise AssertionError("the worker publishes its answers; it never echoes the headers")


@dataclass
class FakeConnection:
    """The port boundary: what the worker subscribes with and publishes to."""

    callback: MsgHandler | None = None
    published: list[tuple[str, bytes]] = field(default_factory=list)

    async def subscribe(
        self, subject: str, *, queue: str = "", cb: MsgHandler | None = None
    ) -> FakeConnection:
        assert subject == SUBJECT
        assert queue
        self.callback = cb
        return self

    async def unsubscribe(self) -> None:
        self.callback = None

    async def drain(self) -> None:
        self.callback = None

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.published.append((subject, payload))


def _worker(encrypted: bool, sink: Callable[[Any], None]) -> tuple[Worker, Throttle]:
    throttle = Throttle(
        window=60.0, max_per_principal=THROTTLE_LIMIT, max_per_ip=THROTTLE_LIMIT + 2
    )
    observer = ServiceObserver(metrics=_METRICS, audit=AuditLog(log=False, sink=sink))
    worker = Worker(
        SEALED if encrypted else PLAIN,
        subject=SUBJECT,
        queue="callout",
        max_concurrency=2,
        max_pending=4,
        observer=observer,
        throttle=throttle,
    )
    return worker, throttle


async def _deliver(worker: Worker, message: Message) -> FakeConnection:
    """Hand ``message`` to the subscription callback; return once the worker holds no task
    for it (bounded: a request that outlives its exp in the worker is a failure)."""
    connection = FakeConnection()
    await worker.start(connection)
    assert connection.callback is not None
    await connection.callback(message)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _SETTLE_SECONDS
    for step in range(_SETTLE_STEPS):
        if not worker.in_flight or loop.time() > deadline:
            break
        # most requests end within a few loop turns; a KDF in its thread takes longer
        await asyncio.sleep(0 if step < _BUSY_STEPS else _SETTLE_STEP)
    assert not worker.in_flight, "a request outlived its exp in the worker"
    return connection


def deliver(payload: bytes, header: str | None, *, encrypted: bool, failures: int = 0) -> str:
    """Deliver one message through a fresh worker; ``failures`` failed logins of the same
    principal and address are recorded first. Returns 'dropped', 'denied' or 'allowed'."""
    events: list[dict[str, Any]] = []
    worker, throttle = _worker(encrypted, events.append)
    pipeline = SEALED if encrypted else PLAIN
    try:
        opened = pipeline.open(payload, header, now=NOW)
    except RequestRejectedError:
        opened = None
    if opened is not None:
        principal, _ = principal_of(opened.request)
        for _ in range(failures):
            attempt = throttle.begin(principal, opened.request.client.host, now=NOW)
            if isinstance(attempt, Attempt):
                throttle.finish(attempt, Reason.BAD_CREDENTIALS, now=NOW)
    message = Message(payload, {XKEY_HEADER: header} if header is not None else None)
    with fixed_clock():
        connection = LOOP.run_until_complete(_deliver(worker, message))
    assert len(events) == 1, f"{len(events)} audit events for one request"
    event = events[0]
    assert event["replied"] == bool(connection.published), event
    assert len(connection.published) <= 1
    if opened is None:
        assert not connection.published, "answered a request that does not open"
        assert event["decision"] == "dropped", event
        return "dropped"
    if not connection.published:
        assert event["decision"] == "dropped", event
        return "dropped"
    subject, reply = connection.published[0]
    assert subject == REPLY
    outcome = check_reply(opened, reply)
    assert (outcome == "allowed") == (event["decision"] == "allow"), event
    return outcome
