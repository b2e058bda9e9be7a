"""What observers and the sessions feature read of a request the service decided.

The pipeline's `OpenedRequest` and `Runtime` live in `callout.service`, above this package;
observers need only a few of their fields, so they name those fields here and the service's
types satisfy them structurally (mypy checks it where the service passes them in).
"""

from __future__ import annotations

from typing import Protocol

from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest


class AccountPlacer(Protocol):
    """The part of an issuer that says where users may be placed."""

    def can_place(self, account: str) -> bool: ...


class RuntimeView(Protocol):
    """The reloadable state a request was decided with: policy, issuer, system account."""

    @property
    def policy(self) -> PolicySnapshot: ...

    @property
    def issuer(self) -> AccountPlacer: ...

    @property
    def system_account(self) -> str | None: ...


class DecidedRequest(Protocol):
    """A verified request and the `RuntimeView` it was decided with."""

    @property
    def request(self) -> AuthRequest: ...

    @property
    def runtime(self) -> RuntimeView: ...
