"""The deny list shared by the replicas through `callout.state.revocations`.

An entry added or removed through any replica (`callout sessions revoke`) is written to the
revocations bucket; every replica's watch applies it to its own deny list (and its file), so
the others refuse the identity within the watch's delay. KV keys are ``<kind>.<base64url
name>``: any name fits the key alphabet, and the name is read back from the value.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import asdict

import structlog

from callout.sessions.denylist import KINDS, DenyEntry, DenyList, DenyListFullError
from callout.state.revocations import Record, SharedRevocations

log = structlog.get_logger("callout.sessions")


def key_of(kind: str, name: str) -> str:
    encoded = base64.urlsafe_b64encode(name.encode("utf-8", "surrogatepass")).decode()
    return f"{kind}.{encoded.rstrip('=') or '='}"


def _entry(record: Record) -> DenyEntry | None:
    kind, name, until = record.get("kind"), record.get("name"), record.get("until")
    if kind not in KINDS or not isinstance(name, str) or not isinstance(until, int):
        return None
    note = record.get("note", "")
    return DenyEntry(kind, name, until, note if isinstance(note, str) else "")


def share(deny_list: DenyList, shared: SharedRevocations, clock: Callable[[], float]) -> None:
    """Write ``deny_list``'s changes to ``shared`` and apply the bucket's entries to it."""

    def changed(kind: str, name: str, entry: DenyEntry | None) -> None:
        key = key_of(kind, name)
        if entry is None:
            shared.delete(key)
        else:
            shared.put(key, asdict(entry))

    def watched(key: str, record: Record | None) -> None:
        kind, _, _ = key.partition(".")
        if record is None:
            # a removal names no entry by value: find the local one with this key
            for live in deny_list.entries(clock()):
                if key_of(live.kind, live.name) == key:
                    deny_list.apply(live.kind, live.name, None, clock())
            return
        entry = _entry(record)
        if entry is None or kind != entry.kind or key_of(entry.kind, entry.name) != key:
            log.warning("shared_revocation_ignored", key=key)
            return
        try:
            deny_list.apply(entry.kind, entry.name, entry, clock())
        except DenyListFullError:
            log.error(  # noqa: TRY400 - an expected refusal, no traceback
                "shared_revocation_dropped", kind=entry.kind, reason="deny list full"
            )

    deny_list.listeners.append(changed)
    shared.listener = watched
    shared.local = lambda: {
        key_of(entry.kind, entry.name): asdict(entry) for entry in deny_list.entries(clock())
    }
