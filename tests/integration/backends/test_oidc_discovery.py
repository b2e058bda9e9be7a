"""OIDC discovery against a stand-in IdP over HTTP on 127.0.0.1: the issuer URL is all the
settings name; the key URL comes from its metadata, under the same bounds as the keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from callout.backends.oidc import OidcBackend
from callout.decision import Decision, Identity, Reason
from callout.errors import BackendUnavailableError
from callout.policy import PolicySnapshot
from callout.settings import OidcBackendSettings
from tests.integration.backends.idp import AUDIENCE, JwksServer, claims, mint
from tests.unit.policy.helpers import request, snapshot

pytestmark = pytest.mark.integration
Open = Callable[..., OidcBackend]


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    return snapshot(tmp_path, "roles: {app: {publish: {allow: ['app.>']}}}\n")


@pytest.fixture
async def discovered(jwks: JwksServer) -> AsyncIterator[Open]:
    """Opens a backend whose only issuer is `jwks.issuer`, with no key location."""
    opened: list[OidcBackend] = []

    def open_(**backend: Any) -> OidcBackend:
        settings = OidcBackendSettings.model_validate(
            {
                "type": "oidc",
                "jwks_refresh_min_interval": "200ms",
                **backend,
                "issuers": [
                    {"issuer": jwks.issuer, "audience": [AUDIENCE], "require": {"sub": "svc-1"}}
                ],
            }
        )
        opened.append(OidcBackend.from_settings(settings))
        return opened[-1]

    yield open_
    for backend in opened:
        backend.close()


async def login(backend: OidcBackend, jwks: JwksServer, policy: PolicySnapshot, **more: Any) -> Any:
    token = mint(jwks.keys[0], claims("svc-1", issuer=jwks.issuer, **more))
    return await backend.authenticate(request(token=token), policy)


async def test_keys_are_found_through_the_issuers_discovery_document(
    jwks: JwksServer, discovered: Open, policy: PolicySnapshot
) -> None:
    """One metadata read, one key-set read, then tokens verify from memory."""
    backend = discovered()
    for _ in range(3):
        assert isinstance(await login(backend, jwks, policy), Identity)
    assert (jwks.discovery_requests, jwks.requests) == (1, 1)


@pytest.mark.parametrize(
    "document",
    [
        {"issuer": "http://127.0.0.1:1/realms/other", "jwks_uri": "{url}"},
        {"issuer": "{issuer}/", "jwks_uri": "{url}"},
        {"issuer": "{issuer}"},
        {"issuer": "{issuer}", "jwks_uri": "http://idp.example.org/jwks"},
        {"issuer": "{issuer}", "jwks_uri": "{url}", "padding": "x" * (1 << 20)},
    ],
    ids=["other-issuer", "trailing-slash", "no-jwks-uri", "plain-http-elsewhere", "too-large"],
)
async def test_a_document_that_cannot_be_trusted_loads_no_keys(
    jwks: JwksServer, discovered: Open, policy: PolicySnapshot, document: dict[str, str]
) -> None:
    """Another issuer's metadata, plain HTTP off loopback or a huge body: logins fail closed."""
    jwks.discovery = {
        key: value.format(issuer=jwks.issuer, url=jwks.url) for key, value in document.items()
    }
    with pytest.raises(BackendUnavailableError):
        await login(discovered(), jwks, policy)
    assert jwks.requests == 0  # no key set was read from a URL it named


async def test_an_idp_outage_keeps_the_discovered_keys_and_recovers(
    jwks: JwksServer, discovered: Open, policy: PolicySnapshot
) -> None:
    """Discovery fails like any fetch: the last good keys stay; later it is read again."""
    backend = discovered(jwks_ttl="200ms")
    assert isinstance(await login(backend, jwks, policy), Identity)
    jwks.fail = True
    await asyncio.sleep(0.25)
    assert isinstance(await login(backend, jwks, policy), Identity)  # refresh failed, keys kept
    jwks.fail = False
    await asyncio.sleep(0.25)
    before = jwks.discovery_requests
    assert isinstance(await login(backend, jwks, policy), Identity)
    assert jwks.discovery_requests == before + 1  # the key URL is looked up again


async def test_require_rules_run_before_groups_and_name_the_failing_path(
    jwks: JwksServer, discovered: Open, policy: PolicySnapshot
) -> None:
    """A valid token of a trusted issuer for another subject is refused, not mapped."""
    backend = discovered()
    token = mint(jwks.keys[0], claims("svc-2", issuer=jwks.issuer, groups=["admins"]))
    decision = await backend.authenticate(request(token=token), policy)
    assert isinstance(decision, Decision)
    assert (decision.reason, decision.detail) == (Reason.CLAIM_NOT_ALLOWED, "require sub")
    assert decision.principal == "svc-2"
