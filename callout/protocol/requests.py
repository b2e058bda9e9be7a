"""The one builder of authorization-request claims, as nats-server 2.10+ sends them.

`request_claims` is pure: it lays out what the caller gives (server identity, client info,
connect options) in the request's shape, with the members nats-server always sends filled in.
`callout.testing.ServerSimulator` signs (and seals) its result like a server; ``policy explain``
and the unit tests read it with `AuthRequest.from_claims` without signing. ``iss`` is the
server's key from ``server["id"]``; `callout.protocol.jwt.encode` sets ``iss``, ``iat`` and
``jti`` again when it signs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callout.protocol.claims import REQUEST_AUDIENCE
from callout.protocol.connections import REPORTED_AS

REQUEST_TYPE = "authorization_request"


def client_kind(connection_type: str) -> dict[str, str]:
    """``client_info.kind`` and ``.type`` a client of ``connection_type`` is reported with."""
    kind, kind_type = REPORTED_AS[connection_type]
    return {"kind": kind, "type": kind_type}


def request_claims(
    *,
    server: Mapping[str, Any],
    client: Mapping[str, Any] | None = None,
    connect: Mapping[str, Any] | None = None,
    user_nkey: str,
    account: str,
    now: int,
    timeout: int = 2,
    jti: str = "",
) -> dict[str, Any]:
    """The claims of one request (fresh dicts: callers may change them before signing).

    ``server`` is ``server_id`` (``id`` and ``name`` at least); ``client`` and ``connect`` are
    added to a plain local NATS client (``client_info`` host 127.0.0.1, id 1, kind Client,
    type nats; ``connect_opts`` protocol 1). ``account`` is the callout account (``sub``);
    the request expires ``timeout`` seconds after ``now``, as the server's callout timeout.
    """
    return {
        "iss": server["id"],
        "sub": account,
        "aud": REQUEST_AUDIENCE,
        "iat": now,
        "exp": now + timeout,
        "jti": jti,
        "nats": {
            "server_id": dict(server),
            "user_nkey": user_nkey,
            "client_info": {
                "host": "127.0.0.1",
                "id": 1,
                **client_kind("STANDARD"),
                **(client or {}),
            },
            "connect_opts": {"protocol": 1, **(connect or {})},
            "type": REQUEST_TYPE,
            "version": 2,
        },
    }
