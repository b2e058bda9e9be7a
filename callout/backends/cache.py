"""The decision cache: successful password logins remembered for a short while.

After a NATS restart every client logs in again at once; without this, each one re-runs an
argon2 verify (~24 ms of CPU) or an LDAP search and bind. Entries are keyed by an HMAC, under
a key drawn at process start, of (policy digest, backend, user, password): the cache holds no
password and no hash that could be attacked offline, and a policy reload (a new digest) empties
it. Only identities are stored, never a denial or a fault; authorization still runs on every
request against the current policy. Concurrent logins with the same credential share one
verification (single flight), which is what makes a storm of identical clients cheap.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable

from callout.backends.base import LATER, Backend, NowResult, authenticate_now, backend_lane
from callout.credentials.presented import password_login
from callout.decision import Decision, Identity, Lane
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest

Result = Identity | Decision | None


def _retrieve(task: asyncio.Task[Result]) -> None:
    # a flight whose every waiter was cancelled must not log "exception never retrieved"
    if not task.cancelled():
        task.exception()


class DecisionCache:
    """A bounded LRU of identities with a TTL, plus the flights in progress."""

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        on_lookup: Callable[[bool], None] | None = None,
        key: bytes | None = None,
    ) -> None:
        """``key`` keys the HMAC (replicas sharing entries need the same one; default: drawn
        at process start)."""
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._key = key or secrets.token_bytes(32)
        # told of every identity stored by a verification here: (key, identity), for sharing
        self.on_store: Callable[[bytes, Identity], None] | None = None
        self._digest = ""
        self._entries: OrderedDict[bytes, tuple[float, Identity]] = OrderedDict()
        self._flights: dict[bytes, asyncio.Task[Result]] = {}
        self.hits = 0
        self.misses = 0
        self.shared = 0
        self._on_lookup = on_lookup  # hit=True also for a shared verification (work saved)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, *parts: str) -> bytes:
        """The HMAC of ``parts``, each length-prefixed so no two tuples collide."""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in parts:
            data = part.encode("utf-8", "surrogatepass")
            mac.update(len(data).to_bytes(4, "big"))
            mac.update(data)
        return mac.digest()

    def clear(self) -> None:
        self._entries.clear()

    def get(self, key: bytes) -> Identity | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, identity = found
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return identity

    def put(self, key: bytes, identity: Identity, ttl: float | None = None) -> None:
        self._entries[key] = (self._clock() + (self.ttl if ttl is None else ttl), identity)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def lane(self, key: bytes, digest: str) -> Lane | None:
        """What a lookup of ``key`` under the policy ``digest`` costs (no hit counted): cheap
        when cached, shared while the same verification is in flight, else None."""
        if self._digest and digest != self._digest:
            return None
        if key in self._flights:
            return Lane.SHARED
        found = self._entries.get(key)
        return Lane.CHEAP if found is not None and self._clock() < found[0] else None

    def lookup_now(self, digest: str, key: bytes) -> Identity | None:
        """The cached identity for ``key`` (a hit, counted and reported), or None with nothing
        counted: `through` then does the lookup that counts the miss."""
        if digest != self._digest:
            return None
        cached = self.get(key)
        if cached is not None:
            self.hits += 1
            self._report(hit=True)
        return cached

    async def through(
        self, digest: str, key: bytes, verify: Callable[[], Awaitable[Result]]
    ) -> Result:
        """The cached identity for ``key``, or the result of ``verify()`` (shared with every
        concurrent caller of the same key; stored only if it is an identity)."""
        if digest != self._digest:
            if self._digest:  # a reload: nothing verified under the old policy is reused
                self._entries.clear()  # (entries another replica shared before are kept)
            self._digest = digest
        cached = self.get(key)
        if cached is not None:
            self.hits += 1
            self._report(hit=True)
            return cached
        flight = self._flights.get(key)
        if flight is None:
            self.misses += 1
            self._report(hit=False)
            flight = asyncio.ensure_future(self._fly(digest, key, verify))
            flight.add_done_callback(_retrieve)
            self._flights[key] = flight
        else:
            self.shared += 1
            self._report(hit=True)
        # shield: one waiter running out of time must not cancel the others' verification
        return await asyncio.shield(flight)

    def _report(self, *, hit: bool) -> None:
        if self._on_lookup is not None:
            self._on_lookup(hit)

    async def _fly(
        self, digest: str, key: bytes, verify: Callable[[], Awaitable[Result]]
    ) -> Result:
        try:
            result = await verify()
        finally:
            del self._flights[key]
        if isinstance(result, Identity) and result.expires_at is None and digest == self._digest:
            self.put(key, result)
            if self.on_store is not None:
                self.on_store(key, result)
        return result


class CachedBackend:
    """A password backend behind the decision cache; other credentials pass straight in."""

    def __init__(self, inner: Backend, cache: DecisionCache) -> None:
        self.inner = inner
        self.name = inner.name
        self.cache = cache
        # The key of the last request asked about: `lane` and then `authenticate_now` (or
        # `authenticate`) ask about the same request one after the other; one HMAC for both.
        self._last: tuple[AuthRequest, str, bytes] | None = None

    def _key(self, request: AuthRequest, policy: PolicySnapshot, login: tuple[str, str]) -> bytes:
        last = self._last
        if last is not None and last[0] is request and last[1] == policy.digest:
            return last[2]
        key = self.cache.key(policy.digest, self.name, *login)
        self._last = (request, policy.digest, key)
        return key

    async def authenticate(self, request: AuthRequest, policy: PolicySnapshot) -> Result:
        login = password_login(request.connect)
        if login is None or not login[1] or not self.cache.enabled:
            return await self.inner.authenticate(request, policy)
        key = self._key(request, policy, login)
        return await self.cache.through(
            policy.digest, key, lambda: self.inner.authenticate(request, policy)
        )

    def authenticate_now(self, request: AuthRequest, policy: PolicySnapshot) -> NowResult:
        """A cache hit without awaiting; a miss is `LATER` (the verification awaits)."""
        login = password_login(request.connect)
        if login is None or not login[1] or not self.cache.enabled:
            return authenticate_now(self.inner, request, policy)
        key = self._key(request, policy, login)
        found = self.cache.lookup_now(policy.digest, key)
        return LATER if found is None else found

    def lane(self, request: AuthRequest, policy: PolicySnapshot) -> Lane | None:
        """A login the cache holds is cheap, one it is verifying already shares that flight;
        anything else costs what the inner backend says."""
        login = password_login(request.connect)
        if login is None or not login[1] or not self.cache.enabled:
            return backend_lane(self.inner, request, policy)
        found = self.cache.lane(self._key(request, policy, login), policy.digest)
        if found is not None:
            return found
        return backend_lane(self.inner, request, policy)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


def decision_cache_of(backends: Iterable[object]) -> DecisionCache | None:
    """The decision cache behind ``backends`` (each may wrap another as ``inner``), if any."""
    for backend in backends:
        layer: object | None = backend
        while layer is not None:
            if isinstance(layer, CachedBackend):
                return layer.cache
            layer = getattr(layer, "inner", None)
    return None
