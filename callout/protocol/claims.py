"""Typed views of the authorization request, and builders for user and response claims.

The request is parsed from the verified JWT's claims by hand (no model validation on the hot
path): unknown members are ignored as Go ignores them; a member we use with the wrong JSON type
is an `InvalidTokenError`. Field meanings: docs/protocol.md#the-request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callout.decision import UserGrant
from callout.errors import InvalidTokenError
from callout.protocol.jwt import Claims

REQUEST_AUDIENCE = "nats-authorization-request"


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise InvalidTokenError(f"{key} must be a string")
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidTokenError(f"{key} must be an integer")
    return value


def _obj(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key) or {}
    if not isinstance(value, dict):
        raise InvalidTokenError(f"{key} must be an object")
    return value


def _strings(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidTokenError(f"{key} must be a list of strings")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    id: str
    name: str = ""
    host: str = ""
    version: str = ""
    cluster: str = ""
    tags: tuple[str, ...] = ()
    xkey: str = ""


@dataclass(frozen=True, slots=True)
class ClientInfo:
    host: str = ""
    id: int = 0
    user: str = ""
    name: str = ""
    kind: str = ""
    type: str = ""
    nonce: str = ""
    mqtt_id: str = ""
    name_tag: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """What the client sent in CONNECT (``password``, ``auth_token``, ``jwt``, ``sig``: secrets)."""

    user: str = ""
    password: str = field(default="", repr=False)
    auth_token: str = field(default="", repr=False)
    jwt: str = field(default="", repr=False)
    nkey: str = ""
    sig: str = field(default="", repr=False)
    name: str = ""
    lang: str = ""
    version: str = ""
    protocol: int = 0


@dataclass(frozen=True, slots=True)
class ClientTLS:
    version: str = ""
    cipher: str = ""
    verified_chains: tuple[tuple[str, ...], ...] = ()
    certs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """A verified authorization request."""

    issuer: str
    subject: str
    audience: str
    issued_at: int
    expires: int
    jti: str
    server: ServerInfo
    user_nkey: str
    client: ClientInfo
    connect: ConnectOptions
    tls: ClientTLS | None

    @classmethod
    def from_claims(cls, claims: Claims) -> AuthRequest:
        nats = _obj(claims, "nats")
        server = _obj(nats, "server_id")
        client = _obj(nats, "client_info")
        opts = _obj(nats, "connect_opts")
        tls = nats.get("client_tls")
        if tls is not None and not isinstance(tls, dict):
            raise InvalidTokenError("client_tls must be an object")
        chains = tls.get("verified_chains") or [] if tls else []
        if not isinstance(chains, list) or not all(isinstance(chain, list) for chain in chains):
            raise InvalidTokenError("verified_chains must be a list of lists")
        return cls(
            issuer=_str(claims, "iss"),
            subject=_str(claims, "sub"),
            audience=_str(claims, "aud"),
            issued_at=_int(claims, "iat"),
            expires=_int(claims, "exp"),
            jti=_str(claims, "jti"),
            server=ServerInfo(
                id=_str(server, "id"),
                name=_str(server, "name"),
                host=_str(server, "host"),
                version=_str(server, "version"),
                cluster=_str(server, "cluster"),
                tags=_strings(server, "tags"),
                xkey=_str(server, "xkey"),
            ),
            user_nkey=_str(nats, "user_nkey"),
            client=ClientInfo(
                host=_str(client, "host"),
                id=_int(client, "id"),
                user=_str(client, "user"),
                name=_str(client, "name"),
                kind=_str(client, "kind"),
                type=_str(client, "type"),
                nonce=_str(client, "nonce"),
                mqtt_id=_str(client, "mqtt_id"),
                name_tag=_str(client, "name_tag"),
                tags=_strings(client, "tags"),
            ),
            connect=ConnectOptions(
                user=_str(opts, "user"),
                password=_str(opts, "pass"),
                auth_token=_str(opts, "auth_token"),
                jwt=_str(opts, "jwt"),
                nkey=_str(opts, "nkey"),
                sig=_str(opts, "sig"),
                name=_str(opts, "name"),
                lang=_str(opts, "lang"),
                version=_str(opts, "version"),
                protocol=_int(opts, "protocol"),
            ),
            tls=None
            if tls is None
            else ClientTLS(
                version=_str(tls, "version"),
                cipher=_str(tls, "cipher"),
                verified_chains=tuple(_strings({"c": chain}, "c") for chain in chains),
                certs=_strings(tls, "certs"),
            ),
        )


def user_claims(
    grant: UserGrant,
    user_nkey: str,
    *,
    audience: str | None,
    issuer_account: str | None = None,
    scoped: bool = False,
) -> Claims:
    """Unsigned user claims.

    ``scoped`` (a scoped signing key signs): no permissions and no limits at all, which for
    nats-server includes ``src``, ``times`` and connection types (docs/protocol.md#the-request); the
    scope's template applies. The service still enforces the grant's conditions itself.
    """
    nats: dict[str, Any] = {}
    if not scoped:
        nats.update(grant.permissions.to_nats())
        nats.update({"subs": -1, "data": -1, "payload": -1})
        nats.update(_limits(grant))
    if grant.tags:
        nats["tags"] = list(grant.tags)
    if grant.proxy_required:  # not a limit: nats-server honours it for scoped users too
        nats["proxy_required"] = True
    if issuer_account:
        nats["issuer_account"] = issuer_account
    nats["type"] = "user"
    nats["version"] = 2
    claims: Claims = {"sub": user_nkey, "name": grant.name, "exp": grant.expires, "nats": nats}
    if audience:
        claims["aud"] = audience
    return claims


def _limits(grant: UserGrant) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if grant.src:
        limits["src"] = list(grant.src)
    if grant.times:
        limits["times"] = [{"start": w.start, "end": w.end} for w in grant.times]
    if grant.times_location:
        limits["times_location"] = grant.times_location
    if grant.connection_types:
        limits["allowed_connection_types"] = list(grant.connection_types)
    return limits


def response_claims(
    request: AuthRequest,
    *,
    user_jwt: str | None = None,
    error: str | None = None,
    issuer_account: str | None = None,
) -> Claims:
    """Unsigned authorization-response claims for ``request``: exactly one of jwt / error."""
    if (user_jwt is None) == (error is None):
        raise ValueError("exactly one of user_jwt and error")
    nats: dict[str, Any] = {"jwt": user_jwt} if user_jwt is not None else {"error": error}
    if issuer_account:
        nats["issuer_account"] = issuer_account
    nats["type"] = "authorization_response"
    nats["version"] = 2
    return {"aud": request.server.id, "sub": request.user_nkey, "nats": nats}
