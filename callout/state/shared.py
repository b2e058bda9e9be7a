"""`SharedState`: the parts of the shared state one service process has, built from settings."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from callout.errors import ConfigError
from callout.secretfiles import read_secret
from callout.settings import Settings
from callout.state.counters import SharedCounters
from callout.state.health import StateHealth
from callout.state.mirror import Mirror
from callout.state.revocations import SharedRevocations
from callout.state.store import SharedStore

MIN_KEY_LENGTH = 32


@dataclass(frozen=True, slots=True)
class SharedState:
    health: StateHealth
    store: SharedStore
    digest_key: bytes  # keys the throttle's digests: the same on every replica
    counters: SharedCounters | None  # with the throttle on
    revocations: SharedRevocations | None  # with live sessions on


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
    mirrors: list[Mirror] = [m for m in (counters, revocations) if m is not None]
    store = SharedStore(state, mirrors, health)
    return SharedState(health, store, key.encode(), counters, revocations)
