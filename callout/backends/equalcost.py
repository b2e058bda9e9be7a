"""Denials that cost the same: a wrong password and an unknown user are not told apart by time.

Each backend already evens out its own paths: the static backend spends a dummy argon2
verify on an unknown user, the directory a bind as a DN that does not exist. A chain of
several password backends needs more: with ``ldap`` before ``static``, a directory user with
a wrong password is refused by the directory alone (a search and a bind), while an unknown
user is also passed on to the static backend (plus an argon2 verify). So the chain keeps a
ledger per request of the costly work done (`Spent`: KDF verifications, directory probes)
and, when a password login is refused, `EqualCost.top_up` spends what is missing: exactly
one KDF verification when the chain has a password-hash backend, and one search-and-bind
per directory in the chain. Every refused password login then costs one KDF plus one probe
of each directory, in every chain order. Logins that succeed are not padded: whoever knows
the password learns nothing from the time.

The ledger lives in a context variable, keyed by the request object, so concurrent requests
(one task each) never share one, and work done in a shared cache flight is counted for the
request that started it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from callout.errors import BackendUnavailableError


class DummyVerifier(Protocol):
    """What the top-up needs of the password verifier (`callout.backends.passwords`)."""

    async def verify_dummy(self, password: str) -> None: ...


class Probe(Protocol):
    """What the top-up needs of a directory (`callout.backends.ldap.Directory`): its
    answer is thrown away, only the work counts."""

    async def verify(self, login: str, password: str) -> object: ...


@dataclass(eq=False)
class Spent:
    """The costly work one request has done so far."""

    request: object
    kdf: int = 0
    probes: set[int] = field(default_factory=set)  # id() of each directory asked


_SPENT: ContextVar[Spent | None] = ContextVar("callout_spent", default=None)


def spent_on(request: object) -> Spent:
    """The ledger of ``request`` in this task, started on first use."""
    spent = _SPENT.get()
    if spent is None or spent.request is not request:
        spent = Spent(request)
        _SPENT.set(spent)
    return spent


def note_kdf() -> None:
    """One KDF verification was spent for the current request (if it keeps a ledger)."""
    spent = _SPENT.get()
    if spent is not None:
        spent.kdf += 1


def note_probe(directory: object) -> None:
    """``directory`` was asked about the current request's user."""
    spent = _SPENT.get()
    if spent is not None:
        spent.probes.add(id(directory))


class EqualCost:
    """What every refused password login of one chain must have cost, and the top-up."""

    def __init__(self, verifier: DummyVerifier | None, directories: Sequence[Probe] = ()) -> None:
        self.verifier = verifier
        self.directories = tuple(directories)

    @property
    def needed(self) -> bool:
        return self.verifier is not None or bool(self.directories)

    async def top_up(self, spent: Spent) -> None:
        """Spend what ``spent`` lacks of one KDF and one probe per directory."""
        filler = secrets.token_urlsafe(24)
        if self.verifier is not None and spent.kdf == 0:
            await self.verifier.verify_dummy(filler)
        for directory in self.directories:
            if id(directory) in spent.probes:
                continue
            spent.probes.add(id(directory))
            # the login is refused anyway; a fault costs no less than a probe
            with suppress(BackendUnavailableError):
                await directory.verify(f"callout-nobody-{secrets.token_hex(8)}", filler)
