"""What the reloader reports to readiness: the policy and the keys, each from its own check."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from callout.devserver.config_mode import ConfigModeSetup
from callout.observability.metrics import Metrics
from callout.service.reloader import Reloader


@pytest.fixture
def reloader(tmp_path: Path) -> Reloader:
    setup = ConfigModeSetup(tmp_path / "keys", 4222, encrypted=True).write()
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text("version: 1\n")
    return Reloader(setup.settings(policies), metrics=Metrics())


def test_a_loaded_service_reports_policy_and_keys(reloader: Reloader) -> None:
    assert reloader.policy_loaded()
    assert reloader.keys_loaded()


def test_keys_without_the_configured_xkey_are_not_loaded(reloader: Reloader) -> None:
    """Settings that want encrypted requests need the xkey: a runtime without it is not
    ready, whatever the policy says."""
    reloader.runtime = dataclasses.replace(reloader.runtime, xkey=None)
    assert reloader.policy_loaded()
    assert not reloader.keys_loaded()
