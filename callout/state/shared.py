"""`SharedState`: the parts of the shared state one service process has, built from settings."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from callout.errors import ConfigError
from callout.secretfiles import read_secret
from callout.settings import Settings
from callout.state.counters import SharedCounters
from callout.state.decisions import SharedDecisions
from callout.state.health import StateHealth
from callout.state.mirror import Mirror
from callout.state.revocations import SharedRevocations
from callout.state.sessions import SharedSessions
from callout.state.store import SharedStore

MIN_KEY_LENGTH = 32


@dataclass(frozen=True, slots=True)
class SharedState:
    health: StateHealth
    store: SharedStore
    digest_key: bytes  # keys the throttle's digests: the same on every replica
    counters: SharedCounters | None  # with the throttle on
    revocations: SharedRevocations | None  # with live sessions on
    decisions: SharedDecisions | None  # with the decision cache on (ttl > 0)
    sessions: SharedSessions | None = None  # with live sessions on

    @property
    def cache_key(self) -> bytes:
        """Keys the decision cache's HMAC: derived from the shared key, not the key itself."""
        return hmac.new(self.digest_key, b"callout decision cache", hashlib.sha256).digest()


def build_shared_state(settings: Settings, registry: CollectorRegistry) -> SharedState:
    """The shared state ``settings.state`` asks for; `ConfigError` if its key is unusable."""
    state = settings.state
    assert state.key_file is not None  # noqa: S101 - the settings validator guarantees it
    key = read_secret(state.key_file, "state.key_file")
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"state.key_file {state.key_file}: {len(key)} characters, at least "
            f"{MIN_KEY_LENGTH} needed (e.g. `openssl rand -hex 32`, the same on every replica)"
        )
    health = StateHealth(registry)
    counters = (
        SharedCounters(
            state.throttle_bucket,
            window=settings.throttle.window,
            health=health,
            max_pending=state.max_pending,
            max_mirrored=state.max_mirrored,
        )
        if settings.throttle.enabled
        else None
    )
    revocations = (
        SharedRevocations(state.revocations_bucket, health=health, max_pending=state.max_pending)
        if settings.sessions.enabled
        else None
    )
    cache = settings.decision_cache
    decisions = (
        SharedDecisions(
            state.decisions_bucket,
            ttl=cache.ttl,
            key=key.encode(),
            health=health,
            max_pending=state.max_pending,
        )
        if cache.ttl > 0
        else None
    )
    sessions = (
        SharedSessions(
            state.sessions_bucket,
            max_age=state.sessions_max_age,
            health=health,
            max_pending=state.max_pending,
            max_mirrored=state.max_mirrored,
        )
        if settings.sessions.enabled
        else None
    )
    mirrors: list[Mirror] = [
        m for m in (counters, revocations, decisions, sessions) if m is not None
    ]
    store = SharedStore(state, mirrors, health)
    # the throttle's digest key (blake2b takes at most 64 bytes): derived, like the others
    digest_key = hmac.new(key.encode(), b"callout throttle", hashlib.sha256).digest()
    return SharedState(health, store, digest_key, counters, revocations, decisions, sessions)
