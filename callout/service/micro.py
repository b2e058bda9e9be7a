"""`$SRV.PING|INFO|STATS` answers, so `nats micro ls/info/stats` see the service.

Not `nats.micro.add_service`: that would route every authorization request through its
endpoint machinery. Instead three wildcard subscriptions answer the discovery verbs from
counters the worker keeps anyway, in the micro v1 schema (the response types of nats-py's
``nats.micro``): nothing is added to the request path. Every instance answers (no queue
group), as micro services do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from nats.micro.service import (
    EndpointInfo,
    EndpointStats,
    ServiceInfo,
    ServicePing,
    ServiceStats,
)
from nats.nuid import NUID

from callout import __version__
from callout.observability.observer import RequestStats
from callout.protocol.port import Msg, Subscriber, Subscription

SERVICE_NAME = "nats-auth-callout"
ENDPOINT_NAME = "authorize"
_PREFIX = "$SRV"
_VERBS = ("PING", "INFO", "STATS")


class MicroResponder:
    """Answers the micro discovery verbs for one worker."""

    def __init__(
        self,
        *,
        subject: str,
        queue: str,
        stats: Callable[[], RequestStats],
        details: Callable[[], Mapping[str, Any]],
        name: str = SERVICE_NAME,
    ) -> None:
        self.id = NUID().next().decode()
        self.name = name
        self.subject = subject
        self.queue = queue
        self.stats = stats
        self.details = details
        self.metadata = {"subject": subject, "queue_group": queue}
        self._subscriptions: list[Subscription] = []

    async def start(self, nc: Subscriber) -> None:
        for suffix in ("", f".{self.name}", f".{self.name}.{self.id}"):
            subject = f"{_PREFIX}.*{suffix}"
            self._subscriptions.append(await nc.subscribe(subject, cb=self._on_message))

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        self._subscriptions.clear()

    async def _on_message(self, msg: Msg) -> None:
        verb = msg.subject.split(".")[1]
        if verb not in _VERBS or not msg.reply:
            return
        await msg.respond(json.dumps(self.answer(verb)).encode())

    def answer(self, verb: str) -> dict[str, Any]:
        """The micro v1 response body for ``verb`` (PING, INFO or STATS)."""
        if verb == "PING":
            return ServicePing(self.id, self.name, __version__, dict(self.metadata)).to_dict()
        if verb == "INFO":
            endpoint = EndpointInfo(ENDPOINT_NAME, self.subject, self.queue)
            return ServiceInfo(
                name=self.name,
                id=self.id,
                version=__version__,
                description="NATS auth callout",
                endpoints=[endpoint],
                metadata=dict(self.metadata),
            ).to_dict()
        stats = self.stats()
        average = stats.processing_ns // stats.requests if stats.requests else 0
        endpoint_stats = EndpointStats(
            name=ENDPOINT_NAME,
            subject=self.subject,
            queue_group=self.queue,
            num_requests=stats.requests,
            num_errors=stats.errors,
            processing_time=stats.processing_ns,
            average_processing_time=average,
            last_error=stats.last_error,
            data=dict(self.details()),
        )
        return ServiceStats(
            id=self.id,
            name=self.name,
            version=__version__,
            started=datetime.fromtimestamp(stats.started, UTC).replace(tzinfo=None),
            endpoints=[endpoint_stats],
            metadata=dict(self.metadata),
        ).to_dict()
