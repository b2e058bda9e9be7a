"""The deny list: matching, persistence, bounds, and a broken file failing closed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from callout.decision import Identity
from callout.errors import ConfigError
from callout.sessions.denylist import DenyEntry, DenyList, DenyListFullError

NOW = 1_800_000_000


def test_an_entry_refuses_its_identity_until_its_time(tmp_path: Path) -> None:
    """A revoked user stays out until ``until`` and only then may come back."""
    deny = DenyList(tmp_path / "deny.json")
    deny.add(DenyEntry("user", "alice", NOW + 60), NOW)
    assert deny.refuses(Identity("alice", "static"), NOW) is not None
    assert deny.refuses(Identity("alice", "ldap"), NOW) is not None
    assert deny.refuses(Identity("bob", "static"), NOW) is None
    assert deny.refuses(Identity("alice", "static"), NOW + 60) is None


def test_tokens_and_groups_match_only_their_kind(tmp_path: Path) -> None:
    """A token id is not a user name, a group matches every member."""
    deny = DenyList(None)
    deny.add(DenyEntry("token", "ci", NOW + 60), NOW)
    deny.add(DenyEntry("group", "contractors", NOW + 60), NOW)
    assert deny.refuses(Identity("ci", "token"), NOW) is not None
    assert deny.refuses(Identity("ci", "static"), NOW) is None
    assert deny.refuses(Identity("carol", "ldap", groups=("contractors",)), NOW) is not None


def test_the_list_survives_a_restart(tmp_path: Path) -> None:
    """Persisted on every change, read back at start-up."""
    path = tmp_path / "deny.json"
    DenyList(path).add(DenyEntry("user", "alice", NOW + 60, note="left"), NOW)
    again = DenyList(path)
    assert again.entries(NOW) == [DenyEntry("user", "alice", NOW + 60, "left")]
    assert again.remove("user", "alice", NOW)
    assert DenyList(path).entries(NOW) == []


def test_the_list_is_bounded(tmp_path: Path) -> None:
    """Hostile input cannot grow it without end; expired entries do not count."""
    deny = DenyList(tmp_path / "deny.json", max_entries=2)
    deny.add(DenyEntry("user", "a", NOW + 1), NOW)
    deny.add(DenyEntry("user", "b", NOW + 60), NOW)
    with pytest.raises(DenyListFullError):
        deny.add(DenyEntry("user", "c", NOW + 60), NOW)
    deny.add(DenyEntry("user", "c", NOW + 60), NOW + 2)  # "a" has expired
    assert [e.name for e in deny.entries(NOW + 2)] == ["b", "c"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "cannot be read"),
        ('{"version": 9}', "not a deny list"),
        ('{"version": 1, "entries": [{"kind": "nobody", "name": "x", "until": 1}]}', "entries[0]"),
    ],
)
def test_a_broken_file_is_a_configuration_error(tmp_path: Path, text: str, problem: str) -> None:
    """Fail closed: an unreadable deny list never becomes an empty one."""
    path = tmp_path / "deny.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(problem)) as caught:
        DenyList(path)
    assert str(path) in str(caught.value)
    assert "fix or remove" in str(caught.value)


def test_the_file_is_replaced_whole(tmp_path: Path) -> None:
    """No temporary file is left behind and the content is the documented shape."""
    path = tmp_path / "deny.json"
    DenyList(path).add(DenyEntry("group", "g", NOW + 5), NOW)
    assert [p.name for p in tmp_path.iterdir()] == ["deny.json"]
    body = json.loads(path.read_text())
    assert body == {
        "version": 1,
        "entries": [{"kind": "group", "name": "g", "until": NOW + 5, "note": ""}],
    }
