"""Fault tests run in the config-mode "accounts" environment of the integration suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import environment
from tests.integration.environments import Environment


@pytest.fixture(scope="session")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    env = environment("accounts").start(tmp_path_factory.mktemp("faults"))
    try:
        yield env
    finally:
        env.stop()
