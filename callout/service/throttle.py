"""Failed-login limits that hold under concurrency, sprays and lock-out attempts.

An attempt whose work takes long (the expensive lane: a KDF, a directory) is counted when it
*starts* (`Throttle.begin`), before any backend work, and given back when it ends in a way
that is not a guess (`Throttle.finish`): a success, a policy refusal, our own fault. So a
hundred simultaneous guesses meet a limit of ten exactly as ten sequential ones do: the
eleventh is refused while the first ten are still being verified. Cheap attempts (decided in
microseconds: nkeys, HMAC tokens, cache hits) cannot pile up and are counted when they fail.
A principal's attempts from an address it logged in from recently (*familiar*) are counted
when they fail, never at their start: concurrent honest logins of one account behind one
address (a fleet behind a NAT) are never refused for being concurrent.

Three limits, each a leaky bucket of ``limit`` attempts draining over ``window`` (a burst of
``limit``, then one more every ``window / limit`` seconds):

- per (principal, source address): the guesser at one address is stopped after ``limit``
  guesses for one name; a success from that address clears it;
- per source address: a spray of names, tokens or nkeys from one address is stopped; expired
  and overloaded requests of the address count here too (a flood is a guess that costs us)
  once the address has failed a login within its window, except those of a principal
  familiar at that address. An address with no failure is not blocked by its own overload:
  a restarted service has forgotten who is familiar where, and the reconnect storm of many
  honest users behind one address (a NAT, a proxy) would otherwise lock them all out;
- per principal, from *unfamiliar* addresses only: an address is familiar to a principal for
  ``familiar_for`` after a successful login from it. Guessing one name from many addresses is
  capped, yet a third party cannot lock the user out of the addresses they use (NIST SP
  800-63B §5.2.2 suggests exactly this: accept logins from addresses the subscriber has
  succeeded from before).

Keys are keyed digests (16 bytes; a pair is both digests) of the principal key
(`principal_of`: a name or nkey as sent, or a digest of a token; never a secret) and of the
address. Memory has a ceiling (the tables are in `callout.service.buckets`): each
of the four tables holds at most ``max_tracked`` entries (`MEMORY_PER_ENTRY` bytes each), the
addresses that failed a login within the window at most `FAILING_TRACKED`.
Entries are kept in order of their last attempt. Idle entries leave as new keys arrive: each
insert first drops up to `_SCAN` of the oldest entries whose buckets have drained (a
familiarity, once past ``familiar_for``). When a table is full, the oldest entries
whose buckets have drained (idle: anything untouched for a ``window`` has) are dropped first,
all of them; if none, an idle one among the next few, else the oldest below its limit among
the `_SCAN` oldest. A blocked
entry is never dropped: when the `_SCAN` oldest are all blocked, the new key is refused (fail
closed) until they drain. An attempt counted only when it fails (cheap, or familiar) is
refused at its start, the same way, when its failure could not be counted then.
Pure: the caller passes ``now``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import NamedTuple

from callout.decision import DropReason, Reason
from callout.service.buckets import EPSILON, Buckets, Confirmation, Familiar
from callout.service.throttlekeys import (
    FAILING_TRACKED,
    FAILURES,
    SOURCE_FAILURES,
    digest,
    keyed_hasher,
)
from callout.state.counters import SharedCounters


class Attempt(NamedTuple):
    """One login attempt, to be given to `Throttle.finish`; ``principal`` is set only where the
    principal-wide limit applies (an unfamiliar address), ``early`` when it was counted at
    its start; ``confirmations`` when its counts are shared (several replicas)."""

    pair: bytes | None
    principal: bytes | None
    source: bytes | None
    familiar: bool
    early: bool
    confirmations: tuple[Confirmation, ...] = ()


class Busy(NamedTuple):
    """A limit is reached only by attempts still in progress: try again once one of them
    (under ``key``) has settled, as its outcome decides whether this one may start."""

    key: bytes


class Throttle:
    """``begin`` checks the limits and counts an attempt that could be a guess; ``finish``
    settles it."""

    def __init__(
        self,
        *,
        window: float,
        max_per_principal: int,
        max_per_ip: int,
        max_per_principal_unfamiliar: int = 100,
        familiar_for: float = 7 * 86400.0,
        max_tracked: int = 20_000,
        digest_key: bytes | None = None,
        shared: SharedCounters | None = None,
    ) -> None:
        """``digest_key`` keys the digests (replicas sharing ``shared`` need the same one)."""
        self._hasher = keyed_hasher(digest_key)
        self.shared = shared is not None
        self.pairs = Buckets(
            window=window, limit=max_per_principal, max_tracked=max_tracked,
            name="pair", shared=shared,
        )  # fmt: skip
        self.sources = Buckets(
            window=window, limit=max_per_ip, max_tracked=max_tracked,
            name="source", shared=shared,
        )  # fmt: skip
        self.principals = Buckets(
            window=window, limit=max_per_principal_unfamiliar, max_tracked=max_tracked,
            name="principal", shared=shared,
        )  # fmt: skip
        self.familiar = Familiar(remember=familiar_for, max_tracked=max_tracked)
        # addresses with a failed login within the window: their overload counts against them
        self.failing = Familiar(remember=window, max_tracked=min(max_tracked, FAILING_TRACKED))
        # attempts counted at their start and not settled yet, per key (bounded by the tasks)
        self.in_flight: Counter[bytes] = Counter()

    def _blocked(self, table: Buckets, key: bytes, now: float) -> bool | None:
        """None: room for one more; True: full with settled failures; False: full only
        because of attempts in progress."""
        empty_at = table.value(key)
        if empty_at is None or empty_at - now <= table.headroom:
            return None
        settled = empty_at - self.in_flight.get(key, 0) * table.interval
        return settled - now > table.headroom

    def begin(
        self, principal: str, address: str, *, now: float, early: bool = True
    ) -> Attempt | Busy | str:
        """The attempt, `Busy` (wait), or why it is refused: ``principal``, ``address`` or
        ``table``.

        With ``early`` (work that takes long enough for guesses to pile up: the expensive
        lane) it is counted now, unless the principal is familiar at this address; otherwise
        it is counted by `finish` if it fails. A limit reached only by attempts still in
        progress makes an early attempt wait (`Busy`) instead of failing: concurrent honest
        logins are delayed until the first of them succeeds, never refused for concurrency."""
        who = digest(principal, self._hasher) if principal else None
        source = digest(address, self._hasher) if address else None
        pair = who + (source or b"") if who is not None else None
        familiar = pair is not None and self.familiar(pair, now)
        principal_wide = who if pair is not None and not familiar else None
        busy: Busy | None = None
        for table, key, why in (
            (self.pairs, pair, "principal"),
            (self.sources, source, "address"),
            (self.principals, principal_wide, "principal"),
        ):
            if key is None:
                continue
            blocked = self._blocked(table, key, now)
            if blocked:
                return why
            if blocked is False and busy is None:
                busy = Busy(key)
        attempt = Attempt(pair, principal_wide, source, familiar, early and not familiar)
        if not attempt.early:
            # Counted only if it fails: refused now if its failure could not be counted then.
            return attempt if self._has_room(attempt, now) else "table"
        if busy is not None:
            return busy
        confirm: list[Confirmation] | None = [] if self.shared else None
        if not self._count(attempt, now, with_source=True, confirm=confirm):
            return "table"
        for key in (pair, principal_wide, source):
            if key is not None:
                self.in_flight[key] += 1
        return attempt._replace(confirmations=tuple(confirm)) if confirm else attempt

    @staticmethod
    async def confirmed(attempt: Attempt, budget: float) -> str | None:
        """Wait (at most ``budget`` seconds) until ``attempt``'s counts are written with every
        replica's: why it is over a limit (``principal`` or ``address``) when attempts that
        began at once on other replicas filled the bucket first, else None (also when KV
        did not answer in time: the local count decides)."""
        waiters = [waiter for _, _, waiter in attempt.confirmations]
        if not waiters or budget <= 0:
            return None
        _, late = await asyncio.wait(waiters, timeout=budget)
        if late:
            return None
        for name, window, waiter in attempt.confirmations:
            held = waiter.result()
            if held is not None and held > window + EPSILON:
                return "address" if name == "source" else "principal"
        return None

    def _has_room(self, attempt: Attempt, now: float) -> bool:
        return all(
            key is None or table.has_room(key, now)
            for table, key in (
                (self.pairs, attempt.pair),
                (self.principals, attempt.principal),
                (self.sources, attempt.source),
            )
        )

    def _count(
        self,
        attempt: Attempt,
        now: float,
        *,
        with_source: bool,
        confirm: list[Confirmation] | None = None,
    ) -> bool:
        """Add ``attempt`` to its buckets, all or none (False: a table had no room)."""
        pair, principal, source = attempt.pair, attempt.principal, attempt.source
        if pair is not None and not self.pairs.add(pair, now, confirm):
            return False
        if principal is not None and not self.principals.add(principal, now, confirm):
            if pair is not None:
                self.pairs.refund(pair, now)
            return False
        if with_source and source is not None and not self.sources.add(source, now, confirm):
            if pair is not None:
                self.pairs.refund(pair, now)
            if principal is not None:
                self.principals.refund(principal, now)
            return False
        return True

    def finish(self, attempt: Attempt, outcome: Reason | DropReason, *, now: float) -> None:
        """Settle ``attempt``: a guess stays counted (or is counted now), anything else is given
        back; an expired or overloaded request counts toward its address when the address has
        failed a login within its window (`failing`), unless the principal is familiar
        there. A success clears the pair and makes the address familiar."""
        if not attempt.early:
            self._finish_late(attempt, outcome, now)
            return
        for key in (attempt.pair, attempt.principal, attempt.source):
            if key is not None:
                self.in_flight[key] -= 1
                if self.in_flight[key] <= 0:
                    del self.in_flight[key]
        source = attempt.source
        if outcome in FAILURES:
            if source is not None:
                self.failing.add(source, now)
            return
        if source is not None and not (outcome in SOURCE_FAILURES and self.failing(source, now)):
            self.sources.refund(source, now)
        if attempt.principal is not None:
            self.principals.refund(attempt.principal, now)
        if attempt.pair is None:
            return
        if outcome is Reason.ALLOWED:
            self._succeeded(attempt.pair, now)
        else:
            self.pairs.refund(attempt.pair, now)

    def _finish_late(self, attempt: Attempt, outcome: Reason | DropReason, now: float) -> None:
        if outcome in FAILURES:
            self._count(attempt, now, with_source=True)
            if attempt.source is not None:
                self.failing.add(attempt.source, now)
        elif (
            outcome in SOURCE_FAILURES
            and not attempt.familiar
            and attempt.source
            and self.failing(attempt.source, now)
        ):
            self.sources.add(attempt.source, now)
        elif outcome is Reason.ALLOWED and attempt.pair is not None:
            self._succeeded(attempt.pair, now)

    def _succeeded(self, pair: bytes, now: float) -> None:
        self.pairs.clear(pair, now)
        self.familiar.add(pair, now)

    @property
    def tracked(self) -> int:
        return len(self.pairs) + len(self.sources) + len(self.principals) + len(self.familiar)
