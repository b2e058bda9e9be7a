"""Issuers place users into accounts and sign what the service answers.

Two seams: `AccountPlacement` says which accounts a grant may land in (all a decision needs:
``policy explain`` and ``policy test`` use only it); `Signer` signs the user JWT and the response
around it. An `Issuer` is both. `ConfigModeIssuer` is the config-mode
(`authorization { auth_callout {...} }`) issuer: one issuer account key signs both; the user
JWT's ``aud`` names the target account (docs/protocol.md#target-account). Operator mode adds an
issuer that knows per-account signing keys behind the same `Issuer` Protocol.
"""

from __future__ import annotations

from typing import Protocol

from callout.decision import UserGrant
from callout.protocol import jwt
from callout.protocol.claims import AuthRequest, response_claims, user_claims
from callout.protocol.nkeys import KeyPair, KeyRole


class AccountPlacement(Protocol):
    """Which accounts a grant may land in."""

    def can_place(self, account: str) -> bool:
        """Whether users may be placed into ``account``."""
        ...

    def by_template(self, account: str) -> bool:
        """Whether users of ``account`` are signed by a scoped signing key: nats-server then
        gives them the key's permission template, filled with their JWT's ``name``."""
        ...


class Signer(Protocol):
    """Signs the answers: a user JWT inside a response, or an error response."""

    def grant(self, request: AuthRequest, grant: UserGrant, *, now: int) -> str:
        """A signed response carrying a signed user JWT for ``grant``."""
        ...

    def refuse(self, request: AuthRequest, message: str, *, now: int) -> str:
        """A signed error response."""
        ...


class Issuer(AccountPlacement, Signer, Protocol):
    """Places and signs: what the service's `Runtime` carries."""

    @property
    def fingerprint(self) -> tuple[str, ...]:
        """The public keys and account names it signs with: equal only if nothing changed."""
        ...


class ConfigModeIssuer:
    """One account key signs user JWTs and responses; targets are account *names*."""

    def __init__(self, key: KeyPair, accounts: frozenset[str]) -> None:
        if key.role is not KeyRole.ACCOUNT:
            raise ValueError("the config-mode issuer must be an account key")
        self.key = key
        self.accounts = accounts

    @property
    def public_key(self) -> str:
        return self.key.public_key

    @property
    def fingerprint(self) -> tuple[str, ...]:
        return (self.key.public_key, *sorted(self.accounts))

    def can_place(self, account: str) -> bool:
        return account in self.accounts

    def by_template(self, account: str) -> bool:
        return False  # config mode has no signing keys

    def grant(self, request: AuthRequest, grant: UserGrant, *, now: int) -> str:
        claims = user_claims(grant, request.user_nkey, audience=grant.account)
        user_jwt = jwt.encode(claims, self.key, iat=now)
        return jwt.encode(response_claims(request, user_jwt=user_jwt), self.key, iat=now)

    def refuse(self, request: AuthRequest, message: str, *, now: int) -> str:
        return jwt.encode(response_claims(request, error=message), self.key, iat=now)
