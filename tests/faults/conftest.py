"""Fault tests run in the config-mode "accounts" environment of the integration suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from tests.integration.conftest import ENVIRONMENTS, Deployment, write_policy


@pytest.fixture(scope="session")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    environment = next(env for env in ENVIRONMENTS if env.name == "accounts")
    directory = tmp_path_factory.mktemp("faults")
    setup = ConfigModeSetup(directory / "keys", free_port(), target_accounts=("APP", "OPS")).write()
    policy_dir = write_policy(directory / "policies", "APP", "OPS")
    with NatsServer(setup.config_file, setup.port) as server:
        yield Deployment(environment, setup, server, policy_dir)
