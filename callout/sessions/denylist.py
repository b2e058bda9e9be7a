"""The deny list: identities that must not log in again until a given time.

Entries name a user (a principal of any backend), a token id or a group. A login whose
identity matches an entry that has not expired is refused with ``explicit_deny``. The list
is persisted as JSON (atomically replaced on every change) so it survives restarts; a file
that cannot be read is a configuration error at start-up, never an empty list (fail closed).
Bounded by ``max_entries``: adding past it is refused. Expired entries are dropped on write.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from callout.decision import BackendName, Identity
from callout.errors import ConfigError

Kind = Literal["user", "token", "group"]
KINDS: tuple[Kind, ...] = ("user", "token", "group")
_VERSION = 1


@dataclass(frozen=True, slots=True)
class DenyEntry:
    kind: Kind
    name: str
    until: int  # unix time
    note: str = ""

    def matches(self, identity: Identity) -> bool:
        if self.kind == "group":
            return self.name in identity.groups
        if self.kind == "token":
            return identity.backend == BackendName.TOKEN and identity.principal == self.name
        return identity.backend != BackendName.TOKEN and identity.principal == self.name


class DenyListFullError(Exception):
    """Adding an entry would pass ``max_entries``."""


class DenyList:
    """The deny list in memory, written through to ``path`` (None: memory only)."""

    def __init__(self, path: Path | None, *, max_entries: int = 10_000) -> None:
        self.path = path
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], DenyEntry] = {}
        # told of every local add (the entry) and removal (None): sharing with other replicas
        self.listeners: list[Callable[[str, str, DenyEntry | None], None]] = []
        if path is not None and path.exists():
            for entry in _read(path):
                self._entries[entry.kind, entry.name] = entry

    def entries(self, now: float) -> list[DenyEntry]:
        return sorted((e for e in self._entries.values() if e.until > now), key=lambda e: e.until)

    def refuses(self, identity: Identity, now: float) -> DenyEntry | None:
        """The entry that refuses ``identity`` now, if any."""
        if not self._entries:
            return None
        return next(
            (e for e in self._entries.values() if e.until > now and e.matches(identity)), None
        )

    def add(self, entry: DenyEntry, now: float) -> None:
        """Add or replace the entry for (kind, name) and persist the list."""
        live = {k: e for k, e in self._entries.items() if e.until > now}
        key = (entry.kind, entry.name)
        if key not in live and len(live) >= self.max_entries:
            raise DenyListFullError(f"the deny list holds {self.max_entries} entries already")
        live[key] = entry
        self._save(live)
        self._entries = live
        for listener in self.listeners:
            listener(entry.kind, entry.name, entry)

    def remove(self, kind: str, name: str, now: float) -> bool:
        found = self.apply(kind, name, None, now)
        for listener in self.listeners:
            listener(kind, name, None)
        return found

    def apply(self, kind: str, name: str, entry: DenyEntry | None, now: float) -> bool:
        """Set (``entry``) or remove the entry for (kind, name) as another replica did; no
        listener is told. Whether there was one. An entry past ``max_entries`` raises."""
        live = {k: e for k, e in self._entries.items() if e.until > now}
        key = (kind, name)
        found = key in live
        if entry is None:
            live.pop(key, None)
        elif live.get(key) == entry:
            return True
        else:
            if not found and len(live) >= self.max_entries:
                raise DenyListFullError(f"the deny list holds {self.max_entries} entries already")
            live[key] = entry
        self._save(live)
        self._entries = live
        return found

    def _save(self, entries: dict[tuple[str, str], DenyEntry]) -> None:
        if self.path is None:
            return
        body = {"version": _VERSION, "entries": [asdict(e) for e in entries.values()]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".deny-list-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(body, out, indent=1, sort_keys=True)
            Path(temporary).replace(self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _read(path: Path) -> list[DenyEntry]:
    where = f"sessions.deny_list_file {path}"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(
            f"{where}: cannot be read ({type(error).__name__}); fix or remove the file"
        ) from None
    if not isinstance(body, dict) or body.get("version") != _VERSION:
        raise ConfigError(f"{where}: not a deny list (version {_VERSION}); fix or remove the file")
    entries = []
    for index, item in enumerate(body.get("entries") or []):
        try:
            kind, name, until = item["kind"], item["name"], item["until"]
            if kind not in KINDS or not isinstance(name, str) or not isinstance(until, int):
                raise TypeError  # noqa: TRY301 - one message for every malformed entry
            entries.append(DenyEntry(kind, name, until, str(item.get("note", ""))))
        except (KeyError, TypeError):
            raise ConfigError(
                f"{where}: entries[{index}] needs kind (user/token/group), name and until "
                "(unix time); fix or remove the entry"
            ) from None
    return entries
