"""The server's events the sessions follow, parsed from their JSON bodies.

nats-server publishes, for every client: ``$SYS.ACCOUNT.<account>.CONNECT`` and
``.DISCONNECT`` (system account only), ``$SYS.SERVER.<id>.SHUTDOWN`` when it stops, and on a
failed login ``$SYS.ACCOUNT.CLIENT.AUTH.ERR`` in the callout account, whose ``reason`` is the
server's own text (``Auth callout signing key is unknown``); the system account's
``$SYS.SERVER.<id>.CLIENT.AUTH.ERR`` only says ``Authentication Failure``, so rejections are
read from the account one. Each body has ``server.id`` and ``client.id`` (the ``cid`` of the
authorization request), the key of a session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

CONNECT_SUBJECT = "$SYS.ACCOUNT.*.CONNECT"
DISCONNECT_SUBJECT = "$SYS.ACCOUNT.*.DISCONNECT"
SHUTDOWN_SUBJECT = "$SYS.SERVER.*.SHUTDOWN"
AUTH_ERROR_SUBJECT = "$SYS.ACCOUNT.CLIENT.AUTH.ERR"
KICK_SUBJECT = "$SYS.REQ.SERVER.{server_id}.KICK"
MAX_EVENT_BYTES = 64 * 1024  # events are ~1 KB; anything far larger is not one


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """A connect, disconnect or auth-error advisory for one client."""

    server_id: str
    client_id: int
    account: str = ""
    reason: str = ""


def client_event(data: bytes) -> ClientEvent | None:
    """The client event in ``data``, or None for anything that is not one."""
    if len(data) > MAX_EVENT_BYTES:
        return None
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    server, client = body.get("server"), body.get("client")
    if not isinstance(server, dict) or not isinstance(client, dict):
        return None
    server_id, client_id = server.get("id"), client.get("id")
    if not isinstance(server_id, str) or not isinstance(client_id, int) or not server_id:
        return None
    reason, account = body.get("reason", ""), client.get("acc", "")
    return ClientEvent(
        server_id,
        client_id,
        account if isinstance(account, str) else "",
        reason[:200] if isinstance(reason, str) else "",
    )


def shutdown_server(subject: str) -> str:
    """The server id in ``$SYS.SERVER.<id>.SHUTDOWN``."""
    match subject.split("."):
        case ["$SYS", "SERVER", server_id, "SHUTDOWN"]:
            return server_id
    return ""


def kick_subject(server_id: str) -> str:
    return KICK_SUBJECT.format(server_id=server_id)


def kick_body(client_id: int) -> bytes:
    return json.dumps({"cid": client_id}).encode()


def kick_error(data: bytes) -> str:
    """The server's error from a KICK reply ("" on success), e.g. ``no such client``."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "unreadable reply"
    error = body.get("error") if isinstance(body, dict) else None
    if not error:
        return ""
    text = error.get("description", "") if isinstance(error, dict) else str(error)
    return str(text)[:200] or "error"
