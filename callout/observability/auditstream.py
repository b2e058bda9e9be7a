"""Publishing audit events to JetStream: acked, through a bounded buffer, never blocking.

`offer` is called on the request path and only puts the event in a queue (or counts it as
dropped when the queue is full); one background task publishes and waits for each ack.
An event that cannot be published within ``publish_timeout`` is counted and logged, not
retried: the log line of the same event is the record of last resort. Each message carries
``Nats-Msg-Id`` = the request id, so a stream's duplicate window removes repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog

from callout.observability.audit import AuditEvent
from callout.observability.logs import redact_value
from callout.observability.metrics import Metrics
from callout.protocol.port import Connection, JetStream
from callout.settings import AuditJetStreamSettings

log = structlog.get_logger("callout.audit")

_STOP = object()


class JetStreamAudit:
    """The JetStream sink for `AuditLog`: ``offer`` from anywhere, ``start``/``stop`` with NATS."""

    def __init__(self, settings: AuditJetStreamSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=settings.buffer)
        self._task: asyncio.Task[None] | None = None
        self._js: JetStream | None = None

    def offer(self, event: AuditEvent) -> None:
        """Queue ``event`` for publishing; when the buffer is full it is dropped and counted."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._drop("buffer_full")

    def _drop(self, reason: str) -> None:
        self.metrics.audit_dropped.labels(reason).inc()

    async def start(self, nc: Connection) -> None:
        self._js = nc.jetstream()
        self._task = asyncio.create_task(self._run(), name="audit-jetstream")

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            if event is _STOP:
                return
            await self._publish(event)

    async def _publish(self, event: AuditEvent) -> None:
        data = json.dumps(redact_value(event), separators=(",", ":")).encode()
        headers = {"Nats-Msg-Id": event["request_id"]} if event.get("request_id") else None
        if self._js is None:  # start() sets it before the task that calls this exists
            raise RuntimeError("the audit stream has not started")
        try:
            await self._js.publish(
                self.settings.subject,
                data,
                timeout=self.settings.publish_timeout,
                stream=self.settings.stream,
                headers=headers,
            )
        except Exception as error:  # noqa: BLE001 - a lost audit publish never fails a login
            self._drop("publish_failed")
            log.warning("audit_publish_failed", error=type(error).__name__, detail=str(error))
            return
        self.metrics.audit_published.inc()

    async def stop(self, grace: float) -> None:
        """Publish what is queued within ``grace`` seconds, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_STOP)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
