"""The deny list and the session registry, shared by the replicas through
`callout.state.revocations` and `callout.state.sessions`.

An entry added or removed through any replica (`callout sessions revoke`) is written to the
revocations bucket; every replica's watch applies it to its own deny list (and its file), so
the others refuse the identity within the watch's delay. KV keys are ``<kind>.<base64url
name>``: any name fits the key alphabet, and the name is read back from the value.

Every session a replica admits is written to the sessions bucket, so the sessions API of any
replica lists and kicks every replica's sessions (`others`); on local state, its own only.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import asdict, dataclass

import structlog

from callout.sessions.denylist import KINDS, DenyEntry, DenyList, DenyListFullError
from callout.sessions.registry import Session, SessionKey, SessionRegistry
from callout.state.mirror import Record
from callout.state.revocations import SharedRevocations
from callout.state.sessions import SharedSessions

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


def session_key(key: SessionKey) -> str:
    """The KV key of a session: ``<server id>.<client id>`` (an nkey and a number)."""
    return f"{key[0]}.{key[1]}"


@dataclass(frozen=True, slots=True)
class SharedSession:
    """Another replica's session, as its summary in the sessions bucket: enough to list and
    kick it (not to re-decide it on a reload: that stays with the replica that issued it)."""

    record: Record

    @property
    def server_id(self) -> str:
        return str(self.record.get("server_id", ""))

    @property
    def client_id(self) -> int:
        value = self.record.get("client_id")
        return value if isinstance(value, int) else -1

    @property
    def key(self) -> SessionKey:
        return self.server_id, self.client_id

    @property
    def principal(self) -> str:
        return str(self.record.get("principal", ""))

    @property
    def account(self) -> str:
        return str(self.record.get("account", ""))

    @property
    def backend(self) -> str:
        return str(self.record.get("backend", ""))

    @property
    def groups(self) -> list[str]:
        groups = self.record.get("groups")
        return [str(g) for g in groups] if isinstance(groups, list) else []

    def summary(self) -> dict[str, object]:
        return dict(self.record)


def share_sessions(registry: SessionRegistry, shared: SharedSessions) -> None:
    """Write ``registry``'s sessions to ``shared``, and delete a key whose connection ended
    (ours, or another replica's seen in the bucket)."""
    written: set[str] = set()  # keys of our sessions: bounded by the registry

    def changed(key: SessionKey, session: Session | None) -> None:
        name = session_key(key)
        if session is not None:
            written.add(name)
            shared.put(name, session.summary())
        elif name in written or name in shared.values:
            written.discard(name)
            shared.values.pop(name, None)
            shared.delete(name)

    registry.listeners.append(changed)
    shared.local = lambda: {session_key(s.key): s.summary() for s in registry}


def others(registry: SessionRegistry, shared: SharedSessions, now: float) -> list[SharedSession]:
    """The live sessions of the other replicas (none while on local state), oldest first."""
    shared.expired(now)
    mine = {session_key(s.key) for s in registry}
    found = [SharedSession(r) for key, r in shared.live(now).items() if key not in mine]
    return sorted(found, key=lambda s: int(s.record.get("since", 0)))
