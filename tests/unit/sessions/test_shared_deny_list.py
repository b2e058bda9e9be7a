"""The deny list shared through the revocations bucket: local changes are queued for
writing, watched entries are applied without being written back, odd entries are ignored."""

from __future__ import annotations

import json
from pathlib import Path

from callout.decision import BackendName, Identity
from callout.sessions.denylist import DenyEntry, DenyList
from callout.sessions.shared import key_of, share
from callout.state.health import StateHealth
from callout.state.revocations import SharedRevocations

NOW = 1_000_000.0
ALICE = Identity(principal="alice", backend=BackendName.STATIC)


def _shared(tmp_path: Path) -> tuple[DenyList, SharedRevocations]:
    deny_list = DenyList(tmp_path / "deny-list.json")
    revocations = SharedRevocations("revocations", health=StateHealth())
    share(deny_list, revocations, lambda: NOW)
    return deny_list, revocations


def test_a_local_revocation_is_queued_for_the_other_replicas(tmp_path: Path) -> None:
    deny_list, revocations = _shared(tmp_path)
    deny_list.add(DenyEntry("user", "alice", int(NOW) + 60, "left"), NOW)
    record = revocations.pending[key_of("user", "alice")]
    assert record == {"kind": "user", "name": "alice", "until": int(NOW) + 60, "note": "left"}
    deny_list.remove("user", "alice", NOW)
    assert revocations.pending[key_of("user", "alice")] is None


def test_a_watched_revocation_is_enforced_and_not_written_back(tmp_path: Path) -> None:
    deny_list, revocations = _shared(tmp_path)
    body = {"kind": "user", "name": "alice", "until": int(NOW) + 60}
    revocations.apply(key_of("user", "alice"), json.dumps(body).encode(), 4)
    assert deny_list.refuses(ALICE, NOW) is not None
    assert revocations.pending == {}
    assert "alice" in (tmp_path / "deny-list.json").read_text()  # kept across a restart
    revocations.apply(key_of("user", "alice"), None, 5)
    assert deny_list.refuses(ALICE, NOW) is None


def test_an_entry_under_another_key_is_ignored(tmp_path: Path) -> None:
    """A value naming another identity than its key cannot widen or move a revocation."""
    deny_list, revocations = _shared(tmp_path)
    body = {"kind": "user", "name": "bob", "until": int(NOW) + 60}
    revocations.apply(key_of("user", "alice"), json.dumps(body).encode(), 4)
    revocations.apply(key_of("user", "carol"), b"not json", 5)
    assert deny_list.entries(NOW) == []


def test_any_name_makes_a_valid_kv_key() -> None:
    for name in ("alice", "CN=a b,O=x", "ü/.*>", "a" * 200):
        key = key_of("user", name)
        assert key.startswith("user.")
        assert all(c.isalnum() or c in "-_=." for c in key)
        assert not key.endswith(".")
