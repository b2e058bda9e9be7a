"""The NATS side of the service: the queue-group subscription, two drivers of one request.

`Worker._step` opens a request, counts the attempt in the `Throttle` before any backend work,
and decides it when nothing needs an await (`Pipeline.decide_now`: a cache hit, an HMAC token,
an nkey signature): the *inline* driver, the subscription callback itself, then signs and
hands the reply to the connection with no task created. Anything else goes on in a task (the
*task* driver, at most ``max_pending`` of them; the rest is dropped and counted), because
nats-py runs a subscription's callbacks one at a time. The request is then decided in its
lane (`callout.service.admission`:
``max_concurrency`` cheap slots, a few expensive ones) or refused at once with a signed
``overloaded`` deny when it could not be decided before its ``exp``; the work is also cut off
at the ``exp``: a late answer is useless because the server has stopped listening. Every
outcome, a fault in the task included (``internal_error``), is reported exactly once to the
observer (metrics, audit).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import time
from typing import Any

import structlog

from callout.decision import Decision, DropReason, Lane, Reason
from callout.errors import RequestRejectedError
from callout.observability.observer import ServiceObserver
from callout.protocol.claims import AuthRequest
from callout.protocol.port import Delivery, PubSub, Subscription
from callout.service.admission import Admission, LaneLimits
from callout.service.pipeline import OpenedRequest, Pipeline
from callout.service.requests import Later, Observer, RequestState, header_xkey
from callout.service.throttle import Attempt, Busy, Throttle
from callout.service.throttlekeys import principal_of

log = structlog.get_logger("callout.worker")

_MAX_WAITS = 64  # settles one request may wait through before it is refused as overloaded


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
        expensive: LaneLimits | None = None,
        confirm_budget: float = 0.0,
    ) -> None:
        """``confirm_budget``: how long an expensive attempt may wait for its shared throttle
        count to be written (several replicas; 0: never)."""
        if observer is None:
            observer = ServiceObserver()
        self.observer = observer
        self.throttle = throttle
        self.confirm_budget = confirm_budget
        self.pipeline = pipeline
        self.subject = subject
        self.queue = queue
        self.max_pending = max_pending
        self.admission = Admission(
            {
                Lane.CHEAP: LaneLimits(slots=max_concurrency, queue=max_pending),
                Lane.EXPENSIVE: expensive
                or LaneLimits(slots=os.cpu_count() or 1, queue=max_pending),
                # waiting for a flight takes no resource: bounded by max_pending alone
                Lane.SHARED: LaneLimits(slots=max_pending, queue=max_pending),
            }
        )
        self._tasks: set[asyncio.Task[None]] = set()
        # keys with attempts waiting for an attempt in progress to settle (`Throttle.begin`)
        self._settled: dict[bytes, asyncio.Event] = {}
        self._subscription: Subscription | None = None
        self._nc: PubSub | None = None
        self.cancelled = 0
        self.inline = 0  # requests answered in the subscription callback (no task)

    @property
    def subscribed(self) -> bool:
        return self._subscription is not None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def start(self, nc: PubSub) -> None:
        self._nc = nc
        self._subscription = await nc.subscribe(self.subject, queue=self.queue, cb=self._on_message)

    async def _on_message(self, msg: Delivery) -> None:
        """The inline driver: decide and answer here when nothing needs an await."""
        state = RequestState(msg, time.time(), contextvars.copy_context())
        if len(self._tasks) >= self.max_pending:
            self._dropped(state, DropReason.OVERLOAD, "too many requests in flight")
            return
        try:
            step = state.context.run(self._step, state)
            if isinstance(step, Decision):
                self.inline += 1
                await self._respond(state, step)
                return
        except Exception as error:  # every fault becomes one typed outcome
            log.exception("request_failed")
            if not state.reported:
                await self._internal_error(state, type(error).__name__)
            return
        if step is not None:
            task = asyncio.create_task(self._handle(state, step), context=state.context)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _step(self, state: RequestState) -> Decision | Later | None:
        """Open, throttle and (when no await is needed) decide: the decision to answer with,
        what the task driver needs, or None when the request was dropped (reported)."""
        msg, received = state.msg, state.received
        try:
            opened = self.pipeline.open(msg.data, header_xkey(msg.headers), now=received)
        except RequestRejectedError as error:
            self._dropped(state, error.reason, error.detail)
            return None
        state.opened = opened
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
        lane = self.pipeline.lane(opened)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (request.expires + self.pipeline.leeway - received)
        if self.throttle is not None:
            principal, _ = principal_of(request)
            early = lane is Lane.EXPENSIVE
            begun = self.throttle.begin(
                principal, request.client.host, now=time.time(), early=early
            )
            if isinstance(begun, Busy):
                return Later(lane, deadline, busy=True)
            if isinstance(begun, str):
                self._refused(state, begun)
                return None
            state.attempt = begun
        if lane is not Lane.CHEAP:
            return Later(lane, deadline)
        try:
            decision = self.pipeline.decide_now(opened, now=time.time())
        except Exception:
            log.exception("decision_failed")
            decision = Decision.deny(Reason.INTERNAL_ERROR)
        if decision is None:
            return Later(lane, deadline)
        self._settle(state, decision.reason)
        return decision

    def _refused(self, state: RequestState, begun: str) -> None:
        detail = f"too many failed logins from this {begun}"
        if begun == "table":
            detail = "throttle tables full of blocked keys"
        self._dropped(state, DropReason.THROTTLED, detail)

    async def _handle(self, state: RequestState, later: Later) -> None:
        """The task driver."""
        try:
            await self._work(state, later)
        except Exception as error:  # every fault becomes one typed outcome
            log.exception("request_failed")
            if not state.reported:
                await self._internal_error(state, type(error).__name__)
        except asyncio.CancelledError:  # stop(): the drain timeout ran out, or a forced exit
            if not state.reported:
                self._dropped(state, DropReason.SHUTDOWN, "cancelled by the shutdown")
            raise
        finally:
            self._settle(state, Reason.INTERNAL_ERROR)  # cancelled mid-way: give it back

    async def _work(self, state: RequestState, later: Later) -> None:
        opened = state.opened
        assert opened is not None  # noqa: S101 - `_step` opened it
        request, lane, deadline = opened.request, later.lane, later.deadline
        if later.busy and self.throttle is not None:
            begun = await self._begin(self.throttle, request, lane, deadline)
            if begun == "busy":
                detail = "waited for earlier logins of this principal or address until exp"
                await self._respond(state, self._overloaded(request, detail))
                return
            if isinstance(begun, str):
                self._refused(state, begun)
                return
            state.attempt = begun
        if self.throttle is not None and state.attempt is not None:
            # with shared state, an attempt counted at its start (in the callback or above)
            # waits, within confirm_budget, for its count to be written with the others'
            over = await self.throttle.confirmed(state.attempt, self.confirm_budget)
            if over is not None:  # replicas counted guesses at once: this one is too many
                self._settle(state, DropReason.THROTTLED)
                detail = f"too many failed logins from this {over} (counted by all replicas)"
                self._dropped(state, DropReason.THROTTLED, detail)
                return
        try:
            async with asyncio.timeout_at(deadline):
                decided = await self.admission.run(lane, deadline, lambda: self._decide(opened))
        except TimeoutError:
            self._settle(state, DropReason.EXPIRED)
            self._dropped(state, DropReason.EXPIRED, "no decision before the request expired")
            return
        decision = decided or self._overloaded(request, f"{lane} lane: no decision before exp")
        self._settle(state, decision.reason)
        await self._respond(state, decision)

    async def _begin(
        self, throttle: Throttle, request: AuthRequest, lane: Lane, deadline: float
    ) -> Attempt | str:
        """The throttle's attempt or refusal; while a limit is reached only by logins still in
        progress, wait for one of them to settle (until the deadline: then ``busy``)."""
        loop = asyncio.get_running_loop()
        principal, _ = principal_of(request)
        early = lane is Lane.EXPENSIVE
        for _ in range(_MAX_WAITS):
            begun = throttle.begin(principal, request.client.host, now=time.time(), early=early)
            if not isinstance(begun, Busy):
                return begun
            remaining = deadline - self.admission.margin - loop.time()
            event = self._settled.setdefault(begun.key, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), max(0.0, remaining))
            except TimeoutError:
                break
        return "busy"

    @staticmethod
    def _overloaded(request: AuthRequest, detail: str) -> Decision:
        return Decision.deny(Reason.OVERLOADED, principal=principal_of(request)[1], detail=detail)

    def _settle(self, state: RequestState, outcome: Reason | DropReason) -> None:
        attempt, state.attempt = state.attempt, None
        if self.throttle is None or attempt is None:
            return
        self.throttle.finish(attempt, outcome, now=time.time())
        for key in (attempt.pair, attempt.principal, attempt.source):
            event = self._settled.pop(key, None) if key is not None else None
            if event is not None:
                event.set()  # its waiters try again

    async def _decide(self, opened: OpenedRequest) -> Decision:
        try:
            return await self.pipeline.decide(opened, now=time.time())
        except Exception:
            log.exception("decision_failed")
            return Decision.deny(Reason.INTERNAL_ERROR)

    async def _respond(self, state: RequestState, decision: Decision) -> None:
        opened = state.opened
        assert opened is not None  # noqa: S101 - only opened requests are answered
        reply = self.pipeline.answer(opened, decision, now=int(time.time()))
        replied = False
        if reply is not None and state.msg.reply:
            await self._publish(state.msg.reply, reply)
            replied = True
        self._decided(state, opened, decision, replied=replied)

    async def _publish(self, subject: str, data: bytes) -> None:
        # Not msg.respond(): it would echo the request's headers (the server's xkey) back.
        if self._nc is None:
            raise RuntimeError("the worker has not started")
        await self._nc.publish(subject, data)

    def _decided(
        self, state: RequestState, opened: OpenedRequest, decision: Decision, *, replied: bool
    ) -> None:
        """Report the outcome after the reply: the publish above only queued it for nats-py's
        flusher, whose wake-up is already scheduled, so the audit line and the metrics run in
        a callback behind it and never delay the write (`_report`)."""
        state.reported = True
        seconds = time.time() - state.received
        asyncio.get_running_loop().call_soon(
            self._report, opened, decision, seconds, replied, context=state.context
        )

    def _report(
        self, opened: OpenedRequest, decision: Decision, seconds: float, replied: bool
    ) -> None:
        try:
            self.observer.decided(opened, decision, seconds=seconds, replied=replied)
        except Exception:  # a broken sink must not reach the loop's handler
            log.exception("report_failed")

    async def _internal_error(self, state: RequestState, detail: str) -> None:
        """A fault outside the backends: one ``internal_error``, answered with a signed deny
        when the answer path still works (an unopened request gets no answer)."""
        self._settle(state, Reason.INTERNAL_ERROR)
        opened = state.opened
        if opened is None:
            self._dropped(state, DropReason.INTERNAL_ERROR, detail)
            return
        decision = Decision.deny(Reason.INTERNAL_ERROR, detail=detail)
        replied = False
        try:
            reply = self.pipeline.answer(opened, decision, now=int(time.time()))
            if reply is not None and state.msg.reply:
                await self._publish(state.msg.reply, reply)
                replied = True
        except Exception:  # the answer path itself failed: reported, unanswered
            log.exception("internal_error_answer_failed")
        self._decided(state, opened, decision, replied=replied)

    def _dropped(self, state: RequestState, reason: DropReason, detail: str) -> None:
        state.reported = True
        opened = state.opened
        request = opened.request if opened is not None else None
        self.observer.dropped(
            reason.value,
            detail,
            seconds=time.time() - state.received,
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
