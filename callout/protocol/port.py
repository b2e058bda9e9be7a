"""The NATS port: the part of a nats-py connection and message the service uses.

nats-py ships no type information, so its `Client` is `Any` to mypy. The worker, the app, the
micro responder, the audit stream and the sessions feature are written against these Protocols
instead: mypy checks every call they make, and checks the fakes unit tests put at this
boundary (tests/unit/service/test_worker.py, tests/fuzz/worker_target.py) against the same
surface. A real `nats.aio.client.Client` and `nats.aio.msg.Msg` satisfy them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class Delivery(Protocol):
    """One delivered message, as the request worker reads it."""

    @property
    def subject(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def reply(self) -> str: ...

    @property
    def headers(self) -> dict[str, str] | None: ...


class Msg(Delivery, Protocol):
    """A delivered message that can answer itself."""

    async def respond(self, data: bytes) -> None:
        """Publish ``data`` to `reply` (with the request's headers: nats-py echoes them)."""
        ...


MsgHandler = Callable[[Msg], Awaitable[None]]


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...

    async def drain(self) -> None:
        """UNSUB, then hand every message already routed here to the callback."""
        ...


class JetStream(Protocol):
    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - nats-py's signature
        stream: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Publish and wait for the stream's ack (nats-py's ``PubAck``)."""
        ...


class Subscriber(Protocol):
    async def subscribe(
        self, subject: str, *, queue: str = "", cb: MsgHandler | None = None
    ) -> Subscription: ...


class Publisher(Protocol):
    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: dict[str, str] | None = None,
    ) -> None: ...


class PubSub(Subscriber, Publisher, Protocol):
    """What the request worker needs: its subscription and the replies."""


class Connection(PubSub, Protocol):
    """A connected client, as the app and the audit stream use it."""

    @property
    def is_connected(self) -> bool: ...

    @property
    def is_closed(self) -> bool: ...

    async def flush(self, timeout: int = 10) -> None: ...  # noqa: ASYNC109 - nats-py's

    async def drain(self) -> None: ...

    async def close(self) -> None: ...

    def jetstream(self) -> JetStream: ...
