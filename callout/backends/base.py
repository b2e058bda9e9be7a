"""The contract between credential backends, the policy and the pipeline.

A backend answers one question: *who is this?* It returns an `Identity` for a credential it
recognises and verifies, a deny `Decision` for a credential it recognises but that is wrong
(never falling through to a weaker backend), or `None` when the credential is not its kind.
What the identity may do is the policy's business (`callout.policy`).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from callout.decision import Decision, Identity, Lane
from callout.protocol.claims import AuthRequest

if TYPE_CHECKING:
    from callout.policy.snapshot import PolicySnapshot


class Backend(Protocol):
    """One credential backend. ``name`` appears in logs, audit and metric labels."""

    name: str

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        """Identity if verified, a deny if recognised but wrong, None if not this kind."""
        ...


@runtime_checkable
class ReloadsFiles(Protocol):
    """A backend that re-reads files of its own while it runs (the certificate backend: CA
    bundles and CRLs): how many reloads put a new set in use, and how many failed (the last
    good set stayed). The service exports them as metrics."""

    name: str
    reloaded: int
    reload_failures: int


class Later(Enum):
    """What ``authenticate_now`` returns when the answer needs an await (a KDF, a directory)."""

    LATER = "later"


LATER = Later.LATER
NowResult = Identity | Decision | None | Literal[Later.LATER]


def authenticate_now(backend: object, request: AuthRequest, policy: PolicySnapshot) -> NowResult:
    """``backend.authenticate_now(request, policy)``: the same answer ``authenticate`` would
    give, computed without awaiting, or `LATER` when that is not possible (then nothing was
    counted or reported, and ``authenticate`` is asked instead). A backend without the method
    always answers `LATER`."""
    now = getattr(backend, "authenticate_now", None)
    if now is None:
        return LATER
    result: NowResult = now(request, policy)
    return result


def lane_of(backends: Iterable[object], request: AuthRequest, policy: PolicySnapshot) -> Lane:
    """How costly deciding ``request`` is: the lane of the first backend that would take it.

    A backend tells with an optional ``lane(request, policy) -> Lane | None`` (None: not its
    kind, asked exactly when ``authenticate`` would return None); one without it takes every
    credential and runs in the cheap lane, under ``service.max_concurrency`` as all work did
    before lanes. No backend taking the credential is cheap: a deny."""
    for backend in backends:
        found = backend_lane(backend, request, policy)
        if found is not None:
            return found
    return Lane.CHEAP


def backend_lane(backend: object, request: AuthRequest, policy: PolicySnapshot) -> Lane | None:
    """``backend.lane(request, policy)``, or cheap when it does not say."""
    lane = getattr(backend, "lane", None)
    if lane is None:
        return Lane.CHEAP
    found = lane(request, policy)
    return None if found is None else Lane(found)
