"""What the service knows about sessions, fed by its own decisions and the server's events.

`SessionTracker` owns the registry and the deny list. Two small hooks feed it without
touching the worker: `DenyListGate` wraps each backend (it sees the verified `Identity`,
refuses deny-listed ones, and remembers the identity for the grant that follows) and
`SessionObserver` extends the worker's observer (it sees every allow that was answered).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable

import structlog

from callout.backends.base import Backend, backend_lane
from callout.decision import Decision, Identity, Lane, Reason
from callout.observability.audit import AuditEvent, AuditLog, decision_event
from callout.observability.decided import DecidedRequest
from callout.observability.metrics import Metrics
from callout.observability.observer import ServiceObserver
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.sessions.advisories import ClientEvent
from callout.sessions.denylist import DenyList
from callout.sessions.metrics import SessionMetrics
from callout.sessions.registry import Session, SessionRegistry, credential_digest, stripped

log = structlog.get_logger("callout.sessions")

SERVER_REJECTED = "server_rejected_grant"
_QUOTED = re.compile(r'"[^"]*"')
_KEY = re.compile(r"\b[A-Z2-7]{56}\b")


class SessionTracker:
    """The registry, the deny list and the identities waiting for their grant."""

    def __init__(
        self,
        registry: SessionRegistry,
        deny_list: DenyList,
        *,
        metrics: SessionMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.deny_list = deny_list
        self.metrics = metrics or SessionMetrics()
        self.metrics.watch(lambda: len(self.registry))
        self.clock = clock
        # user nkey → identity, between authentication and the observer; bounded like the
        # requests in flight (an entry whose request was dropped ages out first).
        self._identities: OrderedDict[str, Identity] = OrderedDict()
        self.max_identities = 4 * 4096
        # Grants whose connection ended before the server confirmed it: the server refused
        # them, and its auth-error advisory (on another connection) may come after the
        # disconnect event. Kept, bounded, to correlate the two.
        self._unconfirmed: OrderedDict[tuple[str, int], Session] = OrderedDict()
        self.max_unconfirmed = 1024

    def identified(self, request: AuthRequest, identity: Identity) -> None:
        self._identities[request.user_nkey] = identity
        while len(self._identities) > self.max_identities:
            self._identities.popitem(last=False)

    def refused(self, identity: Identity) -> Decision | None:
        """A deny for a deny-listed identity, None for anyone else."""
        entry = self.deny_list.refuses(identity, self.clock())
        if entry is None:
            return None
        return Decision.deny(
            Reason.EXPLICIT_DENY,
            backend=identity.backend,
            principal=identity.principal,
            detail=f"deny list: {entry.kind} {entry.name!r} until {entry.until}",
        )

    def granted(self, opened: DecidedRequest, decision: Decision) -> None:
        """Record an allow that was answered."""
        request, grant = opened.request, decision.grant
        identity = self._identities.pop(request.user_nkey, None)
        if grant is None or identity is None:
            return
        policy: PolicySnapshot = opened.runtime.policy
        session = Session(
            server_id=request.server.id,
            client_id=request.client.id,
            user_nkey=request.user_nkey,
            identity=identity,
            grant=grant,
            request=stripped(request),
            policy_digest=policy.digest,
            credential=credential_digest(policy, identity),
            issued_at=self.clock(),
        )
        forgotten = self.registry.add(session)
        if forgotten is not None:
            self.metrics.evicted.inc()
            log.warning(
                "session_evicted",
                max_sessions=self.registry.max_sessions,
                principal=forgotten.principal,
                server_id=forgotten.server_id,
                client_id=forgotten.client_id,
            )

    def forgot(self, request: AuthRequest) -> None:
        """A request that ended without a grant: its identity is not needed any more."""
        self._identities.pop(request.user_nkey, None)

    def connected(self, event: ClientEvent) -> None:
        self.registry.connected((event.server_id, event.client_id))

    def disconnected(self, event: ClientEvent) -> None:
        session = self.registry.remove((event.server_id, event.client_id))
        if session is not None and not session.connected:
            self._unconfirmed[session.key] = session
            while len(self._unconfirmed) > self.max_unconfirmed:
                self._unconfirmed.popitem(last=False)

    def server_gone(self, server_id: str) -> None:
        removed = self.registry.server_gone(server_id)
        if removed:
            log.info("sessions_server_gone", server_id=server_id, sessions=removed)

    def sweep(self) -> None:
        self.registry.sweep(self.clock())

    def rejected(self, event: ClientEvent) -> AuditEvent | None:
        """The server refused a login: if it was one of our grants, the audit event for it."""
        key = (event.server_id, event.client_id)
        session = self.registry.remove(key) or self._unconfirmed.pop(key, None)
        if session is None:
            return None
        reason = event.reason or "unknown"
        self.metrics.rejections.labels(_reason_label(reason)).inc()
        log.error(
            SERVER_REJECTED,
            server_reason=reason,
            principal=session.principal,
            account=session.account,
            server_id=session.server_id,
            client_id=session.client_id,
            hint="nats-server refused a user JWT we issued: check the signing keys and accounts",
        )
        decision = Decision.allow(
            session.grant, backend=session.identity.backend, principal=session.principal
        )
        audit = decision_event(
            session.request,
            decision,
            policy_digest=session.policy_digest,
            seconds=0.0,
            replied=True,
        )
        return audit | {"decision": "error", "reason": SERVER_REJECTED, "detail": reason}


def _reason_label(reason: str) -> str:
    """A bounded label: the server's text with quoted names and keys replaced by ``*``."""
    reason = _QUOTED.sub('"*"', reason)
    return _KEY.sub("*", reason).strip()[:80] or "unknown"


class DenyListGate:
    """A backend wrapper: deny-listed identities are refused, others remembered."""

    def __init__(self, backend: Backend, tracker: SessionTracker) -> None:
        self.backend = backend
        self.name = backend.name
        self.tracker = tracker

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        result = await self.backend.authenticate(request, policy)
        if isinstance(result, Identity):
            refused = self.tracker.refused(result)
            if refused is not None:
                return refused
            self.tracker.identified(request, result)
        return result

    def lane(self, request: AuthRequest, policy: PolicySnapshot) -> Lane | None:
        """The wrapped backend's lane: the gate adds no cost of its own."""
        return backend_lane(self.backend, request, policy)

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()


class SessionObserver(ServiceObserver):
    """The worker's observer, also recording every answered allow in the tracker."""

    def __init__(
        self,
        tracker: SessionTracker,
        *,
        metrics: Metrics | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        super().__init__(metrics=metrics, audit=audit)
        self.tracker = tracker

    def decided(
        self, opened: DecidedRequest, decision: Decision, *, seconds: float, replied: bool
    ) -> None:
        super().decided(opened, decision, seconds=seconds, replied=replied)
        if decision.grant is not None and replied:
            self.tracker.granted(opened, decision)
        else:
            self.tracker.forgot(opened.request)
