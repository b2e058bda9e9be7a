"""What kind of credential a client presented, read from ``connect_opts``.

Four kinds, each accepted by the backends configured for it: ``password`` (user + pass),
``nkey`` (a public key and its nonce signature), ``token`` (an opaque ``auth_token``) and
``jwt`` (a JWT bearer token: an ``auth_token`` shaped like a JWT, or a non-NATS JWT in
``connect_opts.jwt``, which is where an MQTT password that is a JWT arrives).
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from callout.protocol.claims import ConnectOptions

_JWT = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_NATS_ALGORITHMS = frozenset({"ed25519-nkey", "ed25519"})


def is_jwt_shaped(text: str) -> bool:
    """Three base64url segments, the first a JSON object (``eyJ``)."""
    return bool(_JWT.match(text))


def _header_alg(token: str) -> str:
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        return ""
    alg = header.get("alg") if isinstance(header, dict) else None
    return alg.lower() if isinstance(alg, str) else ""


def bearer_jwt(connect: ConnectOptions) -> str:
    """The JWT bearer token of the request, or ``""``. NATS user JWTs (``ed25519-nkey``,
    operator mode) are not bearer tokens: they belong to the NATS login itself."""
    if connect.auth_token and is_jwt_shaped(connect.auth_token):
        return connect.auth_token
    if (
        connect.jwt
        and is_jwt_shaped(connect.jwt)
        and _header_alg(connect.jwt) not in _NATS_ALGORITHMS
    ):
        return connect.jwt
    return ""


def opaque_token(connect: ConnectOptions) -> str:
    """The ``auth_token`` when it is not a JWT, or ``""``."""
    token = connect.auth_token
    return token if token and not is_jwt_shaped(token) else ""


def password_login(connect: ConnectOptions) -> tuple[str, str] | None:
    """(user, password) when the request is a password login: a user name and no nkey
    (an nkey login wins over a user name, as in the static backend)."""
    if connect.nkey or not connect.user:
        return None
    return connect.user, connect.password
