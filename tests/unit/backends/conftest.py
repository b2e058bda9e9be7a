"""Fixtures of the backend tests: the test PKI of the certificate backend."""

from __future__ import annotations

import pytest

from tests.certificates import Authority


@pytest.fixture(scope="module")
def root() -> Authority:
    return Authority.root()


@pytest.fixture(scope="module")
def devices(root: Authority) -> Authority:
    return root.intermediate()
