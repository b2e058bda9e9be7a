"""The session registry shared through the sessions bucket: local sessions are queued for
writing and deleted when they end, other replicas' entries are listed (not while on local
state, not once expired), odd entries are ignored, and both tables are bounded."""

from __future__ import annotations

import json

from callout.cli.sessions import _kicks
from callout.sessions.registry import SessionRegistry
from callout.sessions.shared import others, session_key, share_sessions
from callout.state.health import StateHealth
from callout.state.sessions import SharedSessions
from tests.unit.policy.helpers import NOW
from tests.unit.sessions.test_tracker import session


def _shared(*, up: bool = True, max_pending: int = 100) -> tuple[SessionRegistry, SharedSessions]:
    health = StateHealth()
    if up:
        health.recovered()
    registry = SessionRegistry(10)
    sessions = SharedSessions(
        "sessions", max_age=3600, health=health, max_pending=max_pending, max_mirrored=100
    )
    share_sessions(registry, sessions)
    return registry, sessions


def _remote(client_id: int, until: int = NOW + 60, server: str = "NOTHER") -> bytes:
    record = {"server_id": server, "client_id": client_id, "principal": "bob", "until": until}
    return json.dumps(record | {"account": "APP", "backend": "static", "since": NOW}).encode()


def test_a_local_session_is_written_and_deleted_when_it_ends() -> None:
    registry, shared = _shared()
    registry.add(session(7))
    key = session_key(("NSERVER", 7))
    assert key == "NSERVER.7"
    written = shared.pending[key]
    assert written is not None
    assert (written["principal"], written["until"]) == ("alice", NOW + 3600)
    assert "password" not in json.dumps(written)
    assert "pass" not in written
    registry.remove(("NSERVER", 7))
    assert shared.pending[key] is None


def test_a_disconnect_of_a_client_nobody_shared_writes_nothing() -> None:
    registry, shared = _shared()
    registry.remove(("NSERVER", 99))
    assert shared.pending == {}


def test_another_replicas_session_is_listed_and_deleted_when_its_connection_ends() -> None:
    registry, shared = _shared()
    registry.add(session(7))
    shared.apply("NSERVER.7", json.dumps(session(7).summary()).encode(), 1)  # our own echo
    shared.apply("NOTHER.3", _remote(3), 2)
    listed = others(registry, shared, NOW)
    assert [(s.server_id, s.client_id, s.principal) for s in listed] == [("NOTHER", 3, "bob")]
    shared.pending.clear()
    registry.remove(("NOTHER", 3))  # its disconnect event, seen by this replica
    assert shared.pending == {"NOTHER.3": None}
    assert others(registry, shared, NOW) == []


def test_expired_entries_are_not_listed_and_are_deleted() -> None:
    registry, shared = _shared()
    shared.apply("NOTHER.3", _remote(3, until=NOW - 1), 1)
    assert others(registry, shared, NOW) == []
    assert shared.pending == {"NOTHER.3": None}


def test_on_local_state_only_the_local_registry_is_listed() -> None:
    registry, shared = _shared(up=False)
    shared.apply("NOTHER.3", _remote(3), 1)
    assert others(registry, shared, NOW) == []


def test_odd_entries_are_ignored() -> None:
    _, shared = _shared()
    shared.apply("NOTHER.1", b"not json", 1)
    shared.apply("NOTHER.2", b'{"until": "soon"}', 2)
    shared.apply("NOTHER.3", b"[1]", 3)
    assert shared.values == {}


def test_pending_writes_and_mirrored_entries_are_bounded() -> None:
    registry, shared = _shared(max_pending=3)
    for client_id in range(5):
        registry.add(session(client_id))
    assert len(shared.pending) == 3
    assert shared.health.dropped._value.get() == 2
    for client_id in range(150):
        shared.apply(f"NOTHER.{client_id}", _remote(client_id), client_id + 1)
    assert len(shared.values) == 100
    assert "NOTHER.149" in shared.values
    assert "NOTHER.0" not in shared.values


def test_the_cli_counts_a_session_kicked_by_several_replicas_once() -> None:
    answers = [
        {"kicked": 2, "failed": 0, "kicked_keys": ["S.1", "S.2"], "failed_keys": []},
        {"kicked": 1, "failed": 1, "kicked_keys": ["S.1"], "failed_keys": ["S.2"]},
    ]
    assert _kicks(answers) == (2, 0)
    assert _kicks([{"kicked": 1, "failed": 1}, {"kicked": 2, "failed": 0}]) == (3, 1)
