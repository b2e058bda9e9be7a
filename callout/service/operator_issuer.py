"""The operator-mode signer: user JWTs per target account, responses by the callout account.

nats-server places a callout user into the account that signed its user JWT: ``issuer_account``
when a signing key signs, else ``iss`` (docs/protocol.md#target-account). So each configured
account name maps to the key that signs for it; the response is signed by the callout account's
key or one of its signing keys (docs/protocol.md#response-signers). A scoped signing key gets
user JWTs without permissions and limits: the server applies the scope's template instead,
and rejects anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from callout.decision import UserGrant
from callout.protocol import jwt
from callout.protocol.claims import AuthRequest, response_claims, user_claims
from callout.protocol.nkeys import KeyPair, KeyRole


@dataclass(frozen=True, slots=True)
class AccountSigner:
    """The key that signs for one account. ``account`` is the account's public key."""

    account: str
    key: KeyPair
    scoped: bool = False

    def __post_init__(self) -> None:
        if self.key.role is not KeyRole.ACCOUNT:
            raise ValueError("user JWTs and responses are signed by account keys")
        if self.scoped and self.is_account_key:
            raise ValueError("an account's own key cannot be scoped")

    @property
    def is_account_key(self) -> bool:
        return self.key.public_key == self.account

    @property
    def issuer_account(self) -> str | None:
        """What the JWT's ``issuer_account`` must say: the account, when a signing key signs."""
        return None if self.is_account_key else self.account

    def __repr__(self) -> str:
        kind = "account key" if self.is_account_key else "signing key"
        scope = ", scoped" if self.scoped else ""
        return f"AccountSigner({self.account}, {kind} {self.key.public_key}{scope})"


class OperatorModeIssuer:
    """Signs for the configured accounts (by name); responses by the callout account."""

    def __init__(self, response: AccountSigner, accounts: Mapping[str, AccountSigner]) -> None:
        if response.scoped:
            raise ValueError("responses cannot be signed by a scoped key")
        self.response = response
        self.accounts: Mapping[str, AccountSigner] = MappingProxyType(dict(accounts))

    @property
    def callout_account(self) -> str:
        return self.response.account

    @property
    def fingerprint(self) -> tuple[str, ...]:
        signers = [("", self.response), *sorted(self.accounts.items())]
        return tuple(repr(signer) + name for name, signer in signers)

    def can_place(self, account: str) -> bool:
        return account in self.accounts

    def by_template(self, account: str) -> bool:
        signer = self.accounts.get(account)
        return signer is not None and signer.scoped

    def account_key(self, account: str) -> str | None:
        """The public key of the account configured as ``account``, if any."""
        signer = self.accounts.get(account)
        return None if signer is None else signer.account

    def grant(self, request: AuthRequest, grant: UserGrant, *, now: int) -> str:
        signer = self.accounts.get(grant.account)
        if signer is None:  # the pipeline asks can_place first; never sign for the unknown
            raise ValueError(f"account {grant.account!r} is not configured")
        claims = user_claims(
            grant,
            request.user_nkey,
            # operator mode places by signer; aud is ignored (docs/protocol.md#target-account)
            audience=None,
            issuer_account=signer.issuer_account,
            scoped=signer.scoped,
        )
        user_jwt = jwt.encode(claims, signer.key, iat=now)
        return self._respond(request, user_jwt=user_jwt, now=now)

    def refuse(self, request: AuthRequest, message: str, *, now: int) -> str:
        return self._respond(request, error=message, now=now)

    def _respond(
        self,
        request: AuthRequest,
        *,
        now: int,
        user_jwt: str | None = None,
        error: str | None = None,
    ) -> str:
        claims = response_claims(
            request, user_jwt=user_jwt, error=error, issuer_account=self.response.issuer_account
        )
        return jwt.encode(claims, self.response.key, iat=now)
