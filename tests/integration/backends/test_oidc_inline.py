"""The OIDC backend's inline driver (`authenticate_now`) against a JWKS served over HTTP on
127.0.0.1: with the token's key loaded and fresh it gives the answer `authenticate` gives
(and the same report); whenever finding the key may need a fetch it answers `LATER` and
fetches nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from callout.backends.base import LATER
from callout.backends.chain import BackendReport, BackendStats, ReportedBackend
from callout.backends.oidc import OidcBackend
from callout.decision import Decision, Identity
from callout.policy import PolicySnapshot
from callout.settings import OidcBackendSettings
from tests.integration.backends.idp import AUDIENCE, ISSUER, JwksServer, SigningKey, claims, mint
from tests.unit.policy.helpers import request, snapshot

pytestmark = pytest.mark.integration
Open = Callable[..., OidcBackend]
Keys = tuple[SigningKey, SigningKey]


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    return snapshot(tmp_path, "roles: {app: {publish: {allow: ['app.>']}}}\n")


@pytest.fixture
async def open_backend(jwks: JwksServer) -> AsyncIterator[Open]:
    opened: list[OidcBackend] = []

    def open_(*, backend: dict[str, Any] | None = None, **issuer: Any) -> OidcBackend:
        settings = OidcBackendSettings.model_validate(
            {
                "type": "oidc",
                "jwks_refresh_min_interval": "200ms",
                **(backend or {}),
                "issuers": [
                    {
                        "issuer": ISSUER,
                        "audience": [AUDIENCE],
                        "jwks_url": jwks.url,
                        "allow_any_subject": "tests: one stand-in IdP, one subject",
                        **issuer,
                    }
                ],
            }
        )
        opened.append(OidcBackend.from_settings(settings))
        return opened[-1]

    yield open_
    for backend in opened:
        backend.close()


async def _warm(backend: OidcBackend, key: SigningKey, policy: PolicySnapshot) -> None:
    """Load the issuer's keys the way the service does: one login through `authenticate`."""
    await backend.authenticate(request(token=mint(key, claims())), policy)
    assert backend.issuers[ISSUER].keys.key_count > 0


def _same(inline: object, slow: object) -> None:
    """The same answer: an identity with the same fields, or a deny with the same reason and
    detail (Decision carries no timestamps; Identity none either)."""
    assert type(inline) is type(slow)
    if isinstance(slow, Decision):
        assert isinstance(inline, Decision)
        assert (inline.reason, inline.detail, inline.principal) == (
            slow.reason,
            slow.detail,
            slow.principal,
        )
    else:
        assert inline == slow


@pytest.mark.parametrize(
    "case",
    [
        ({}, {}),
        ({"lifetime": -120}, {}),
        ({"aud": "another-service"}, {}),
        ({"nbf": 4_000_000_000}, {}),
        ({"issuer": "https://evil.example"}, {}),
        ({"team": "red"}, {"require": {"team": "blue"}, "allow_any_subject": None}),
        ({"team": "blue"}, {"require": {"team": "blue"}, "allow_any_subject": None}),
        ({}, {"required_claims": ["exp", "iat", "sub", "tenant"]}),
    ],
    ids=[
        "valid",
        "expired",
        "wrong-audience",
        "not-yet-valid",
        "untrusted-issuer",
        "claim-rule-fails",
        "claim-rule-holds",
        "missing-required-claim",
    ],
)
async def test_with_the_key_loaded_the_inline_answer_is_the_slow_one(
    jwks: JwksServer,
    idp_keys: Keys,
    open_backend: Open,
    policy: PolicySnapshot,
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Same checks, same reasons, same details, same report; and no fetch on the way."""
    change, issuer = case
    backend = open_backend(**issuer)
    payload = claims(**change)
    await _warm(backend, idp_keys[0], policy)
    fetches = jwks.requests
    reports: list[BackendReport] = []
    stats = BackendStats()
    stats.observers.append(reports.append)
    reported = ReportedBackend(backend, stats)
    token = request(token=mint(idp_keys[1], payload))
    inline = reported.authenticate_now(token, policy)
    assert inline is not LATER
    slow = await reported.authenticate(token, policy)
    _same(inline, slow)
    assert [report.reason for report in reports[:1]] == [report.reason for report in reports[1:]]
    assert len(reports) == 2  # one report per driver
    assert jwks.requests == fetches


async def test_an_unknown_kid_is_later_and_fetches_nothing_inline(
    jwks: JwksServer, idp_keys: Keys, open_backend: Open, policy: PolicySnapshot
) -> None:
    """A kid not among the loaded keys may be a rotation: the fetch is the slow path's."""
    backend = open_backend()
    await _warm(backend, idp_keys[0], policy)
    fetches = jwks.requests
    stranger = SigningKey.rsa("rsa-new")
    token = request(token=mint(stranger, claims()))
    assert backend.authenticate_now(token, policy) is LATER
    assert jwks.requests == fetches
    jwks.keys.append(stranger)  # rotated in: the slow path fetches and finds it
    await asyncio.sleep(0.25)  # past jwks_refresh_min_interval (200ms)
    assert isinstance(await backend.authenticate(token, policy), Identity)
    assert jwks.requests == fetches + 1
    assert isinstance(backend.authenticate_now(token, policy), Identity)


async def test_without_keys_or_with_stale_ones_the_inline_driver_defers(
    jwks: JwksServer, idp_keys: Keys, open_backend: Open, policy: PolicySnapshot
) -> None:
    """No keys yet, or keys past jwks_ttl: `LATER`, so the key fetch keeps its task."""
    backend = open_backend(backend={"jwks_ttl": "1h"})
    token = request(token=mint(idp_keys[0], claims()))
    assert backend.authenticate_now(token, policy) is LATER
    assert jwks.requests == 0
    await _warm(backend, idp_keys[0], policy)
    assert isinstance(backend.authenticate_now(token, policy), Identity)
    source = backend.issuers[ISSUER].keys
    source._clock = lambda: float("inf")  # the ttl has passed (a clock at the port boundary)
    assert backend.authenticate_now(token, policy) is LATER


async def test_credentials_that_are_not_jwts_are_none_inline(
    open_backend: Open, policy: PolicySnapshot
) -> None:
    """Opaque tokens and passwords pass to the next backend, as with `authenticate`."""
    backend = open_backend()
    assert backend.authenticate_now(request(token="nac_abc_def"), policy) is None
    assert backend.authenticate_now(request(user="a", password="b"), policy) is None
