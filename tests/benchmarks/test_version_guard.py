"""What the server-version guard adds to each request (pytest-benchmark; no timed assertions).

Re-run on a quiet machine:
``.venv/bin/pytest -q -p no:cacheprovider tests/benchmarks/test_version_guard.py``
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from callout.observability.metrics import Metrics
from callout.protocol import jwt
from callout.protocol.claims import AuthRequest
from callout.service.versionguard import VersionGuard
from callout.settings.versions import ServerVersionSettings
from callout.testing import ServerSimulator

pytestmark = pytest.mark.benchmark(group="version guard", min_rounds=20, max_time=0.3)


def _request(version: str) -> AuthRequest:
    payload, _ = ServerSimulator(version=version).request(now=int(time.time()))
    claims = jwt.decode(payload.decode(), expected_type="authorization_request")
    return AuthRequest.from_claims(claims)


def test_observe_a_known_version(benchmark: Any) -> None:
    """Per verified request: the cached verdict and one counter increment."""
    guard = VersionGuard(ServerVersionSettings(), metrics=Metrics())
    request = _request("2.12.5")
    verdict = benchmark(guard.observe, request)
    assert verdict.band == "2.12"
    assert verdict.advisories


def test_refusal_check_of_an_accepted_version(benchmark: Any) -> None:
    """Per decided request: a cached lookup, no deny."""
    guard = VersionGuard(ServerVersionSettings())
    request = _request("2.15.1")
    assert benchmark(guard.refusal, request) is None
