"""Signing keys: the config-mode issuer and xkey seeds, and the operator-mode key model (the
callout account and the target accounts, each with its signing keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from callout.protocol.nkeys import KeyRole, is_public_key
from callout.settings.base import Section


class KeySettings(Section):
    issuer_seed_file: Path | None = Field(
        default=None,
        description="config mode: account seed (SA...) that signs user JWTs and responses",
    )
    xkey_seed_file: Path | None = Field(
        default=None, description="curve seed (SX...); when set, requests must be encrypted"
    )


def _account_key(value: str) -> str:
    if not is_public_key(value, KeyRole.ACCOUNT):
        raise ValueError("not an account public key (56 characters starting with A)")
    return value


AccountKey = Annotated[str, AfterValidator(_account_key)]


class AccountKeys(Section):
    """Operator mode: an account the service signs for, and the seed it signs with."""

    public_key: AccountKey = Field(description="the account's public key (A...)")
    signing_seed_file: Path = Field(
        description="the seed the service signs with: the account's own seed or one of its "
        "signing keys' seeds (SA...)"
    )
    signing_keys: list[AccountKey] = Field(
        default_factory=list,
        description="the account's signing keys as its JWT lists them (nsc describe account); "
        "during a rotation both the old and the new key",
    )

    @model_validator(mode="after")
    def _distinct_keys(self) -> AccountKeys:
        if len(set(self.signing_keys)) != len(self.signing_keys):
            raise ValueError("signing_keys lists a key twice")
        if self.public_key in self.signing_keys:
            raise ValueError("signing_keys must not repeat public_key (the account key)")
        return self


class TargetAccount(AccountKeys):
    scoped: bool = Field(
        default=False,
        description="the signing seed is a scoped signing key: user JWTs carry no permissions "
        "or limits and the scope's template applies",
    )

    @model_validator(mode="after")
    def _scoped_needs_a_signing_key(self) -> TargetAccount:
        if self.scoped and not self.signing_keys:
            raise ValueError(
                "scoped: true needs signing_keys: only a signing key can be scoped, never the "
                "account key itself"
            )
        return self


class OperatorSettings(Section):
    """Operator (decentralized) mode: who signs responses, and the accounts users go to."""

    callout_account: AccountKeys = Field(
        description="the account whose JWT has the authorization (auth callout) member; its key "
        "or one of its signing keys signs the responses"
    )
    accounts: dict[str, TargetAccount] = Field(
        min_length=1, description="account NAME (as policies write it) -> keys"
    )

    @model_validator(mode="after")
    def _one_name_per_account(self) -> OperatorSettings:
        seen: dict[str, str] = {}
        for name, account in self.accounts.items():
            if not name.strip() or name != name.strip():
                raise ValueError(f"account name {name!r}: empty or surrounded by whitespace")
            other = seen.setdefault(account.public_key, name)
            if other != name:
                raise ValueError(f"accounts {other!r} and {name!r} have the same public_key")
        return self
