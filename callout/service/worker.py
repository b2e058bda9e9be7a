"""The NATS side of the service: the queue-group subscription and one task per request.

nats-py runs a subscription's callbacks one at a time, so the callback only spawns a task;
``max_concurrency`` tasks decide at once, at most ``max_pending`` exist (the rest is shed and
counted), and each request's work is cut off at its ``exp``: a late answer is useless because
the server has stopped listening. A `Throttle` is consulted before any backend work; every
outcome is reported once to the observer (metrics, audit).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, Protocol

import structlog

from callout.errors import RequestRejectedError
from callout.protocol.claims import AuthRequest
from callout.protocol.xkey import HEADER as XKEY_HEADER
from callout.service.decision import Decision, DropReason, Reason
from callout.service.pipeline import OpenedRequest, Pipeline
from callout.service.throttle import Throttle, principal_of

log = structlog.get_logger("callout.worker")


def _header_xkey(headers: dict[str, str] | None) -> str | None:
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == XKEY_HEADER.lower():
            return value
    return None


class Observer(Protocol):
    """Told about every request once: decided (answered or not) or dropped."""

    def decided(
        self, opened: OpenedRequest, decision: Decision, *, seconds: float, replied: bool
    ) -> None: ...

    def dropped(
        self,
        reason: str,
        detail: str,
        *,
        seconds: float,
        request: AuthRequest | None = None,
        principal: str = "",
        policy_digest: str = "",
    ) -> None: ...


class Worker:
    """Subscribes on ``subject`` in ``queue`` and answers each request through ``pipeline``."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        subject: str,
        queue: str,
        max_concurrency: int,
        max_pending: int,
        observer: Observer | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        if observer is None:
            from callout.observability.observer import ServiceObserver  # noqa: PLC0415

            observer = ServiceObserver()
        self.observer = observer
        self.throttle = throttle
        self.pipeline = pipeline
        self.subject = subject
        self.queue = queue
        self.max_pending = max_pending
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscription: Any = None
        self._nc: Any = None
        self.decisions: Counter[Reason] = Counter()
        self.drops: Counter[DropReason] = Counter()
        self.cancelled = 0

    @property
    def subscribed(self) -> bool:
        return self._subscription is not None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def start(self, nc: Any) -> None:
        self._nc = nc
        self._subscription = await nc.subscribe(self.subject, queue=self.queue, cb=self._on_message)

    async def _on_message(self, msg: Any) -> None:
        if len(self._tasks) >= self.max_pending:
            self._dropped(DropReason.OVERLOAD, "too many requests in flight", started=time.time())
            return
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: Any) -> None:
        received = time.time()
        try:
            opened = self.pipeline.open(msg.data, _header_xkey(msg.headers), now=received)
        except RequestRejectedError as error:
            self._dropped(DropReason(error.reason), error.detail, started=received)
            return
        request = opened.request
        structlog.contextvars.bind_contextvars(
            # The per-connection user nkey is unique per request; the jti is not (it hashes
            # only aud/exp/iat/iss/sub, so requests in one second share it).
            request_id=request.user_nkey,
            server_id=request.server.id,
            server_name=request.server.name,
            client_host=request.client.host,
            client_id=request.client.id,
            client_name=request.client.name,
        )
        principal, _ = principal_of(request)
        if self.throttle is not None:
            why = self.throttle.blocked(principal, request.client.host, now=received)
            if why is not None:
                detail = f"too many failed logins from this {why}"
                self._dropped(DropReason.THROTTLED, detail, started=received, opened=opened)
                return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (request.expires + self.pipeline.leeway - received)
        try:
            async with asyncio.timeout_at(deadline), self._slots:
                decision = await self._decide(opened)
        except TimeoutError:
            detail = "no decision before the request expired"
            self._dropped(DropReason.EXPIRED, detail, started=received, opened=opened)
            return
        if self.throttle is not None:
            self.throttle.record(principal, request.client.host, decision.reason, now=time.time())
        await self._respond(msg, opened, decision, started=received)

    async def _decide(self, opened: OpenedRequest) -> Decision:
        try:
            return await self.pipeline.decide(opened, now=time.time())
        except Exception:
            log.exception("decision_failed")
            return Decision.deny(Reason.INTERNAL_ERROR)

    async def _respond(
        self, msg: Any, opened: OpenedRequest, decision: Decision, *, started: float
    ) -> None:
        reply = self.pipeline.answer(opened, decision, now=int(time.time()))
        replied = reply is not None and bool(msg.reply)
        if replied:
            # Not msg.respond(): it would echo the request's headers (the server's xkey) back.
            await self._nc.publish(msg.reply, reply)
        self.decisions[decision.reason] += 1
        seconds = time.time() - started
        self.observer.decided(opened, decision, seconds=seconds, replied=replied)

    def _dropped(
        self,
        reason: DropReason,
        detail: str,
        *,
        started: float,
        opened: OpenedRequest | None = None,
    ) -> None:
        self.drops[reason] += 1
        request = opened.request if opened is not None else None
        self.observer.dropped(
            reason.value,
            detail,
            seconds=time.time() - started,
            request=request,
            principal=principal_of(request)[1] if request is not None else "",
            policy_digest=opened.runtime.policy.digest if opened is not None else "",
        )

    async def stop(self, grace: float) -> None:
        """Drain, then stop: the server is told to route no more requests here (the other
        members of the queue group take them), every request it already routed here is
        still taken and answered, and in-flight ones get until ``grace`` seconds from now;
        the rest are cancelled. Never takes much longer than ``grace``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            # UNSUB, a PING round trip (all routed messages have arrived), then the
            # subscription's queue is handed to _on_message to the last message. Shielded:
            # nats-py's read loop fails on the PONG of a flush that was cancelled.
            try:
                draining = asyncio.ensure_future(subscription.drain())
                _DRAINS.add(draining)  # held until done, even when stop() is cancelled
                draining.add_done_callback(_retrieve)
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(draining)
            except Exception as error:  # noqa: BLE001 - a lost connection ends the drain
                log.warning("subscription_drain_failed", error=type(error).__name__)
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
            for task in late:
                task.cancel()
            self.cancelled += len(late)
            if late:
                await asyncio.wait(late)


_DRAINS: set[asyncio.Future[Any]] = set()


def _retrieve(task: asyncio.Future[Any]) -> None:
    _DRAINS.discard(task)
    if not task.cancelled():
        task.exception()  # reported by stop(); not "never retrieved" at exit
