"""What the worker's two drivers share about one request: its state, what the task driver
needs when the request cannot be decided inline, and the observer port told about it."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Protocol

from callout.decision import Decision, Lane
from callout.protocol.claims import AuthRequest
from callout.protocol.port import Delivery
from callout.protocol.xkey import HEADER as XKEY_HEADER
from callout.service.pipeline import OpenedRequest
from callout.service.throttle import Attempt


def header_xkey(headers: dict[str, str] | None) -> str | None:
    """The `Nats-Server-Xkey` header's value (names compared case-insensitively), if sent."""
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


@dataclass(slots=True)
class RequestState:
    """What one request's drivers know so far; ``reported`` once the observer has been told.
    ``context`` holds the request's log bindings, for the task and the report alike."""

    msg: Delivery
    received: float
    context: contextvars.Context
    opened: OpenedRequest | None = None
    attempt: Attempt | None = None
    reported: bool = False


@dataclass(frozen=True, slots=True)
class Later:
    """The request needs the task driver: its lane, its deadline (loop time), and whether the
    throttle said `Busy` (the task waits for a settle before beginning the attempt)."""

    lane: Lane
    deadline: float
    busy: bool = False
