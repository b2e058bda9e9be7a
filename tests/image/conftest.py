"""The image tests run only from `make image-test`, which builds the image and names it in
CALLOUT_IMAGE: the main `pytest` run does not collect them and never needs podman."""

from __future__ import annotations

import os

import pytest

IMAGE_VARIABLE = "CALLOUT_IMAGE"

collect_ignore_glob = [] if os.environ.get(IMAGE_VARIABLE) else ["test_*.py"]


@pytest.fixture(scope="session")
def image() -> str:
    """The image under test, e.g. localhost/nats-auth-callout:0.1.0."""
    return os.environ[IMAGE_VARIABLE]
