"""Claims of the operator-mode trust chain: operator, account and plain user JWTs.

What `nsc` writes, built from values (docs/protocol.md#operator-mode): an operator JWT naming the
system account, account JWTs with unlimited ``limits`` (without them an account admits no
connection), signing keys (plain or scoped with a permission template) and the auth-callout
``authorization`` member, and user JWTs for the service's own login and for sentinels.
Sign them with `callout.protocol.jwt.encode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from callout.decision import Permissions
from callout.protocol.jwt import Claims

ANY_ACCOUNT = "*"
UNLIMITED_ACCOUNT = {
    "subs": -1,
    "data": -1,
    "payload": -1,
    "imports": -1,
    "exports": -1,
    "wildcards": True,
    "conn": -1,
    "leaf": -1,
}
# JetStream limits (inline in ``limits``): -1 = unlimited; without them JetStream is off.
UNLIMITED_JETSTREAM = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}
DENY_ALL = Permissions(pub_deny=(">",), sub_deny=(">",))
_NO_PERMISSIONS = Permissions()


@dataclass(frozen=True, slots=True)
class ScopedKey:
    """A scoped signing key: users it signs get ``template`` and nothing of their own."""

    key: str
    role: str
    template: Permissions
    description: str = ""

    def to_nats(self) -> dict[str, Any]:
        template = {**self.template.to_nats(), "subs": -1, "data": -1, "payload": -1}
        entry: dict[str, Any] = {
            "kind": "user_scope",
            "key": self.key,
            "role": self.role,
            "template": template,
        }
        if self.description:
            entry["description"] = self.description
        return entry


@dataclass(frozen=True, slots=True)
class Authorization:
    """The ``authorization`` member of a callout account JWT (``nsc edit authcallout``)."""

    auth_users: tuple[str, ...]
    allowed_accounts: tuple[str, ...] = ()
    xkey: str = ""

    def __post_init__(self) -> None:
        if not self.auth_users:
            raise ValueError("auth callout needs at least one auth user")
        if ANY_ACCOUNT in self.allowed_accounts and len(self.allowed_accounts) > 1:
            raise ValueError("'*' must be the only allowed account")

    def to_nats(self) -> dict[str, Any]:
        body: dict[str, Any] = {"auth_users": list(self.auth_users)}
        if self.allowed_accounts:
            body["allowed_accounts"] = list(self.allowed_accounts)
        if self.xkey:
            body["xkey"] = self.xkey
        return body


def operator_claims(operator: str, *, name: str, system_account: str) -> Claims:
    """An operator JWT (self-signed: sign it with the operator key)."""
    nats = {"system_account": system_account, "type": "operator", "version": 2}
    return {"sub": operator, "name": name, "nats": nats}


def account_claims(
    account: str,
    *,
    name: str,
    signing_keys: Sequence[str | ScopedKey] = (),
    authorization: Authorization | None = None,
    jetstream: bool = False,
) -> Claims:
    """An account JWT with unlimited limits (sign it with the operator key); ``jetstream``:
    JetStream enabled for the account, without limits."""
    limits = {**UNLIMITED_ACCOUNT, **(UNLIMITED_JETSTREAM if jetstream else {})}
    nats: dict[str, Any] = {
        "limits": limits,
        "default_permissions": {"pub": {}, "sub": {}},
    }
    if signing_keys:
        nats["signing_keys"] = [k if isinstance(k, str) else k.to_nats() for k in signing_keys]
    if authorization is not None:
        nats["authorization"] = authorization.to_nats()
    nats["type"] = "account"
    nats["version"] = 2
    return {"sub": account, "name": name, "nats": nats}


def plain_user_claims(
    user: str,
    *,
    name: str,
    permissions: Permissions = _NO_PERMISSIONS,
    issuer_account: str = "",
    bearer: bool = False,
) -> Claims:
    """A user JWT as nsc makes it: the service's login, or a sentinel (``DENY_ALL``).

    ``bearer``: no nonce signature needed (what nats-server's ``default_sentinel`` holds).
    ``issuer_account``: set when a signing key, not the account key, signs it.
    """
    nats: dict[str, Any] = {
        "pub": {},
        "sub": {},
        **permissions.to_nats(),
        "subs": -1,
        "data": -1,
        "payload": -1,
    }
    if bearer:
        nats["bearer_token"] = True
    if issuer_account:
        nats["issuer_account"] = issuer_account
    nats["type"] = "user"
    nats["version"] = 2
    return {"sub": user, "name": name, "nats": nats}
