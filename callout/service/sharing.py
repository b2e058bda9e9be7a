"""The decision cache shared through `callout.state.decisions` (README "Running several
replicas"): what a verification here stores is written for the others, and what the others
stored is adopted here for the rest of its time."""

from __future__ import annotations

import time
from collections.abc import Callable

from callout.backends.cache import DecisionCache
from callout.decision import Identity
from callout.state.decisions import Record, SharedDecisions


def _record(identity: Identity, until: float) -> Record:
    return {
        "principal": identity.principal,
        "backend": identity.backend,
        "groups": list(identity.groups),
        "attributes": dict(identity.attributes),
        "until": until,
    }


def _identity(record: Record) -> tuple[Identity, float] | None:
    try:
        groups = tuple(str(group) for group in record["groups"])
        attributes = {str(k): str(v) for k, v in dict(record["attributes"]).items()}
        identity = Identity(
            principal=str(record["principal"]),
            backend=str(record["backend"]),
            groups=groups,
            attributes=attributes,
        )
        return identity, float(record["until"])
    except (KeyError, TypeError, ValueError):
        return None


def share_decision_cache(
    cache: DecisionCache, shared: SharedDecisions, clock: Callable[[], float] = time.time
) -> None:
    def stored(key: bytes, identity: Identity) -> None:
        shared.put(key.hex(), _record(identity, clock() + cache.ttl))

    def watched(key: str, record: Record) -> None:
        found = _identity(record)
        if found is None:
            return
        identity, until = found
        left = min(until - clock(), cache.ttl)
        if left > 0:
            cache.put(bytes.fromhex(key), identity, ttl=left)

    cache.on_store = stored
    shared.listener = watched
