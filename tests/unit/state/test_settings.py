"""The `state` settings section: off by default, a shared key required when on."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from callout.errors import ConfigError
from callout.secretfiles import write_secret
from callout.settings import Settings, StateSettings
from callout.state.shared import build_shared_state


def test_shared_state_is_off_by_default() -> None:
    assert StateSettings().enabled is False


def test_enabled_without_a_key_file_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="key_file"):
        StateSettings(enabled=True)


def test_the_two_buckets_must_differ() -> None:
    with pytest.raises(ValueError, match="must differ"):
        StateSettings(throttle_bucket="same", revocations_bucket="same")


def test_a_short_key_is_a_configuration_error(tmp_path: Path) -> None:
    key = tmp_path / "key"
    write_secret(key, "short")
    settings = Settings(
        keys={"issuer_seed_file": tmp_path / "seed"},
        accounts=["APP"],
        state={"enabled": True, "key_file": key},
    )
    with pytest.raises(ConfigError, match="at least 32"):
        build_shared_state(settings, CollectorRegistry())


def test_only_the_features_that_are_on_get_a_bucket(tmp_path: Path) -> None:
    key = tmp_path / "key"
    write_secret(key, "k" * 64)
    settings = Settings(
        keys={"issuer_seed_file": tmp_path / "seed"},
        accounts=["APP"],
        state={"enabled": True, "key_file": key},
    )
    shared = build_shared_state(settings, CollectorRegistry())
    assert shared.counters is not None
    assert shared.revocations is None  # live sessions are off
    assert shared.decisions is not None  # the decision cache is on by default
    assert len(shared.digest_key) == 32  # derived: blake2b takes no key over 64 bytes
