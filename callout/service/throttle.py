"""Failed-login limits per principal and per client address, in a sliding window.

Checked before any backend work: a principal or address with ``max_failures`` failed logins
in the last ``window`` seconds gets its requests dropped (no reply; the client waits out the
server's timeout, which slows guessing down to one try per timeout). Failures are credential
failures only (`FAILURES`); our own faults never count against a client. A success clears the
principal's failures (not the address's: many clients may share one address).

The principal key is the user name or nkey as sent, or a keyed digest of a token: never a
secret, and never written anywhere. Memory is bounded: at most ``max_tracked`` keys per kind,
the least recently failed forgotten first. Pure: the caller passes ``now``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict, deque

from callout.protocol.claims import AuthRequest
from callout.service.decision import Reason

FAILURES = frozenset(
    {
        Reason.NO_CREDENTIALS,
        Reason.UNKNOWN_USER,
        Reason.BAD_CREDENTIALS,
        Reason.BAD_NKEY_SIGNATURE,
        Reason.NKEY_NOT_SIGNED,
        Reason.CREDENTIAL_EXPIRED,
    }
)
_DIGEST_KEY = secrets.token_bytes(32)


def principal_of(request: AuthRequest) -> tuple[str, str]:
    """(throttle key, display name) of the credential in ``request``; ("", "") if none.

    Tokens and JWTs are keyed by a process-local digest; their display is only their kind.
    """
    connect = request.connect
    if connect.nkey:
        return f"nkey:{connect.nkey}", connect.nkey
    if connect.user:
        return f"user:{connect.user}", connect.user
    for kind, secret in (("token", connect.auth_token), ("jwt", connect.jwt)):
        if secret:
            digest = hashlib.blake2b(secret.encode(), key=_DIGEST_KEY, digest_size=16)
            return f"{kind}:{digest.hexdigest()}", f"({kind})"
    return "", ""


class _Window:
    """Failure times per key within the window, least recently failed first."""

    def __init__(self, window: float, limit: int, max_tracked: int) -> None:
        self.window = window
        self.limit = limit
        self.max_tracked = max_tracked
        self.times: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self.times.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self.times[key]
            return None
        return times

    def exceeded(self, key: str, now: float) -> bool:
        times = self._recent(key, now)
        return times is not None and len(times) >= self.limit

    def fail(self, key: str, now: float) -> None:
        times = self._recent(key, now)
        if times is None:
            times = self.times[key] = deque(maxlen=self.limit)
            while len(self.times) > self.max_tracked:
                self.times.popitem(last=False)
        else:
            self.times.move_to_end(key)
        times.append(now)

    def clear(self, key: str) -> None:
        self.times.pop(key, None)


class Throttle:
    """Sliding-window failure limits; ``blocked`` before deciding, ``record`` after."""

    def __init__(
        self,
        *,
        window: float,
        max_per_principal: int,
        max_per_ip: int,
        max_tracked: int = 100_000,
    ) -> None:
        self._principals = _Window(window, max_per_principal, max_tracked)
        self._addresses = _Window(window, max_per_ip, max_tracked)

    def blocked(self, principal: str, address: str, *, now: float) -> str | None:
        """Why this login is throttled (``principal`` or ``address``), or None."""
        if principal and self._principals.exceeded(principal, now):
            return "principal"
        if address and self._addresses.exceeded(address, now):
            return "address"
        return None

    def record(self, principal: str, address: str, reason: Reason, *, now: float) -> None:
        """Count a decided login: failures add up, a success clears the principal."""
        if reason is Reason.ALLOWED:
            if principal:
                self._principals.clear(principal)
            return
        if reason not in FAILURES:
            return
        if principal:
            self._principals.fail(principal, now)
        if address:
            self._addresses.fail(address, now)

    @property
    def tracked(self) -> int:
        return len(self._principals.times) + len(self._addresses.times)
