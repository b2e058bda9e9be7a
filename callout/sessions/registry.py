"""The session registry: every grant we issued, until its connection ends or its JWT expires.

A session is keyed by where the connection lives: the server's id and the server-local client
id (``cid``), both in the authorization request and in the server's connect/disconnect events
(which carry no user nkey in config mode). A grant is recorded as *pending*; the server's
``CONNECT`` event confirms it, ``DISCONNECT`` removes it, a server's ``SHUTDOWN`` removes all
of that server's sessions, and an expired JWT removes it at the next sweep.

Memory is bounded by ``max_sessions``: when full, the session whose JWT expires first is
forgotten (it can no longer be revoked; counted in ``evicted``). Pure: no I/O, no clock; its
``listeners`` hear every change (a session added or updated, or a key gone: ``None``), which is
how the registry is shared with the other replicas (`callout.sessions.shared`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from callout.decision import BackendName, Identity, UserGrant
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest, ConnectOptions

SessionKey = tuple[str, int]  # (server id, client id)


@dataclass(frozen=True, slots=True)
class Session:
    """One issued grant. ``request`` has the client's secrets removed (`stripped`)."""

    server_id: str
    client_id: int
    user_nkey: str
    identity: Identity
    grant: UserGrant
    request: AuthRequest
    policy_digest: str
    credential: str  # sha256 of the credential entry the login matched ("" if none)
    issued_at: float
    connected: bool = False

    @property
    def key(self) -> SessionKey:
        return self.server_id, self.client_id

    @property
    def principal(self) -> str:
        return self.identity.principal

    @property
    def account(self) -> str:
        return self.grant.account

    @property
    def backend(self) -> str:
        return self.identity.backend

    def summary(self) -> dict[str, object]:
        """What `callout sessions list` shows: never a secret."""
        return {
            "server_id": self.server_id,
            "server_name": self.request.server.name,
            "client_id": self.client_id,
            "client_host": self.request.client.host,
            "client_name": self.request.client.name or self.request.connect.name,
            "principal": self.principal,
            "backend": self.identity.backend,
            "groups": list(self.identity.groups),
            "account": self.account,
            "policy_digest": self.policy_digest,
            "since": int(self.issued_at),
            "until": self.grant.expires,
            "connected": self.connected,
        }


def stripped(request: AuthRequest) -> AuthRequest:
    """``request`` without the password, token, JWT and signature the client sent."""
    connect = request.connect
    clean = ConnectOptions(
        user=connect.user,
        nkey=connect.nkey,
        name=connect.name,
        lang=connect.lang,
        version=connect.version,
    )
    return dataclasses.replace(request, connect=clean)


def credential_digest(policy: PolicySnapshot, identity: Identity) -> str:
    """A digest of the policy entry that holds ``identity``'s credential, so a changed
    password hash, nkey or token hash shows up on reload ("" for directory identities)."""
    entry = ""
    if identity.backend == BackendName.STATIC:
        user = policy.users.get(identity.principal)
        entry = f"{user.nkey}|{user.password_hash}" if user is not None else ""
    elif identity.backend == BackendName.TOKEN:
        token = policy.token(identity.principal)
        entry = token.hash if token is not None else ""
    return hashlib.sha256(entry.encode()).hexdigest() if entry else ""


class SessionRegistry:
    """Live sessions by (server id, client id), bounded by ``max_sessions``."""

    def __init__(self, max_sessions: int) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.max_sessions = max_sessions
        self._sessions: dict[SessionKey, Session] = {}
        # (expires, key) of every session added; entries of sessions already gone are
        # skipped when popped, and the heap is rebuilt when it holds twice the sessions.
        self._by_expiry: list[tuple[int, SessionKey]] = []
        self.evicted = 0
        self.listeners: list[Callable[[SessionKey, Session | None], None]] = []

    def _tell(self, key: SessionKey, session: Session | None) -> None:
        for listener in self.listeners:
            listener(key, session)

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def get(self, key: SessionKey) -> Session | None:
        return self._sessions.get(key)

    def add(self, session: Session) -> Session | None:
        """Record a grant; returns the session forgotten to make room, if any."""
        forgotten = None
        if session.key not in self._sessions and len(self._sessions) >= self.max_sessions:
            forgotten = self._pop_first()
            self.evicted += 1
            self._tell(forgotten.key, None)
        self._sessions[session.key] = session
        self._tell(session.key, session)
        heapq.heappush(self._by_expiry, (session.grant.expires, session.key))
        if len(self._by_expiry) > 2 * len(self._sessions) + 16:
            self._by_expiry = [(s.grant.expires, k) for k, s in self._sessions.items()]
            heapq.heapify(self._by_expiry)
        return forgotten

    def _pop_first(self) -> Session:
        """Remove the session whose JWT expires first (O(log n), also under a login storm)."""
        while True:
            expires, key = heapq.heappop(self._by_expiry)
            session = self._sessions.get(key)
            if session is not None and session.grant.expires == expires:
                return self._sessions.pop(key)

    def connected(self, key: SessionKey) -> Session | None:
        """The server confirmed the connection (its CONNECT event)."""
        session = self._sessions.get(key)
        if session is not None and not session.connected:
            session = dataclasses.replace(session, connected=True)
            self._sessions[key] = session
            self._tell(key, session)
        return session

    def remove(self, key: SessionKey) -> Session | None:
        """The connection ended (DISCONNECT, kick, a rejection); told even for a key this
        registry does not hold (another replica's session)."""
        session = self._sessions.pop(key, None)
        self._tell(key, None)
        return session

    def server_gone(self, server_id: str) -> int:
        """A server shut down: its connections are gone. Returns how many were removed."""
        keys = [key for key in self._sessions if key[0] == server_id]
        for key in keys:
            del self._sessions[key]
            self._tell(key, None)
        return len(keys)

    def sweep(self, now: float) -> int:
        """Forget sessions whose JWT has expired (the server closed them). Returns the count."""
        keys = [key for key, s in self._sessions.items() if s.grant.expires <= now]
        for key in keys:
            del self._sessions[key]
            self._tell(key, None)
        return len(keys)

    def select(
        self,
        *,
        principal: str | None = None,
        account: str | None = None,
        backend: str | None = None,
        group: str | None = None,
    ) -> list[Session]:
        """The sessions matching every given filter, oldest first."""
        found = [
            s
            for s in self._sessions.values()
            if (principal is None or s.principal == principal)
            and (account is None or s.account == account)
            and (backend is None or s.identity.backend == backend)
            and (group is None or group in s.identity.groups)
        ]
        return sorted(found, key=lambda s: s.issued_at)
