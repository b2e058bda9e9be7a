"""Parsing the server's client events and KICK replies (bodies as nats-server 2.15 sends)."""

from __future__ import annotations

import json

from callout.sessions import advisories
from callout.sessions.advisories import ClientEvent

AUTH_ERROR = (
    b'{"type":"io.nats.server.advisory.v1.client_disconnect","server":{"name":"n","id":"NABC"},'
    b'"client":{"host":"127.0.0.1","id":10,"acc":"AUTH","user":"alice"},'
    b'"reason":"Auth callout signing key is unknown"}'
)


def test_a_client_event_gives_the_session_key_and_reason() -> None:
    """Server id and client id are what both the request and the events carry."""
    assert advisories.client_event(AUTH_ERROR) == ClientEvent(
        "NABC", 10, "AUTH", "Auth callout signing key is unknown"
    )


def test_anything_else_is_ignored() -> None:
    """Events arrive from the network: a malformed one is skipped, never raised."""
    for data in (
        b"",
        b"[]",
        b"not json",
        b'{"server":{"id":"N"},"client":{"id":"7"}}',
        b'{"server":{},"client":{"id":7}}',
        b"{" + b" " * advisories.MAX_EVENT_BYTES + b"}",
    ):
        assert advisories.client_event(data) is None


def test_kick_request_and_reply() -> None:
    """The KICK request names the client by cid; an error reply says what went wrong."""
    assert advisories.kick_subject("NABC") == "$SYS.REQ.SERVER.NABC.KICK"
    assert json.loads(advisories.kick_body(12)) == {"cid": 12}
    assert advisories.kick_error(b'{"server":{"id":"NABC"}}') == ""
    missing = b'{"error":{"code":500,"description":"no such client or leafnode id"}}'
    assert advisories.kick_error(missing) == "no such client or leafnode id"
    assert advisories.kick_error(b"garbage") == "unreadable reply"


def test_the_shutdown_subject_names_the_server() -> None:
    assert advisories.shutdown_server("$SYS.SERVER.NABC.SHUTDOWN") == "NABC"
    assert advisories.shutdown_server("$SYS.SERVER.NABC.CLIENT.AUTH.ERR") == ""
