"""The image tests run only from `make image-test`, which builds the image and names it in
CALLOUT_IMAGE: the main `pytest` run does not collect them and never needs podman."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer
from tests.image.podman import podman
from tests.image.pods import listen_port

IMAGE_VARIABLE = "CALLOUT_IMAGE"

collect_ignore_glob = [] if os.environ.get(IMAGE_VARIABLE) else ["test_*.py"]


@pytest.fixture(scope="session")
def image() -> str:
    """The image under test, e.g. localhost/nats-auth-callout:0.1.0."""
    return os.environ[IMAGE_VARIABLE]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[tuple[ConfigModeSetup, NatsServer]]:
    setup = ConfigModeSetup(tmp_path / "nats", listen_port(), encrypted=True).write()
    with NatsServer(setup.config_file, setup.port) as server:
        yield setup, server


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"callout-image-test-{secrets.token_hex(4)}"
    yield name
    podman("rm", "--force", "--ignore", "--time", "0", name, check=False)
