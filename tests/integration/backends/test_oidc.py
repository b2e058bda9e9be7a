"""The OIDC backend against a JWKS served over HTTP on 127.0.0.1: what a token must prove."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from callout.backends.oidc import OidcBackend
from callout.decision import Decision, Identity, Reason
from callout.errors import BackendUnavailableError
from callout.policy import PolicySnapshot
from callout.settings import OidcBackendSettings
from tests.integration.backends.idp import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    claims,
    mint,
)
from tests.unit.policy.helpers import request, snapshot

pytestmark = pytest.mark.integration
Open = Callable[..., OidcBackend]
Keys = tuple[SigningKey, SigningKey]


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    return snapshot(tmp_path, "roles: {app: {publish: {allow: ['app.>']}}}\n")


@pytest.fixture
async def open_backend() -> AsyncIterator[Open]:
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


async def login(backend: OidcBackend, token: str, policy: PolicySnapshot) -> Any:
    return await backend.authenticate(request(token=token), policy)


async def refused(backend: OidcBackend, token: str, policy: PolicySnapshot) -> Reason:
    decision = await login(backend, token, policy)
    assert isinstance(decision, Decision), decision
    return decision.reason


@pytest.mark.parametrize("which", [0, 1], ids=["RS256", "ES256"])
async def test_a_valid_token_becomes_an_identity_with_its_claims(
    jwks: JwksServer, idp_keys: Keys, open_backend: Open, policy: PolicySnapshot, which: int
) -> None:
    """sub is the principal, group claims (custom paths too) map to roles, exp caps the JWT."""
    backend = open_backend(
        jwks_url=jwks.url,
        group_claims=["groups", "realm_access.roles"],
        group_prefix="idp:",
        attribute_claims={"team": "org.team"},
    )
    payload = claims(
        "svc-1", groups=["ops"], realm_access={"roles": ["reader"]}, org={"team": "blue"}
    )
    identity = await login(backend, mint(idp_keys[which], payload), policy)
    assert isinstance(identity, Identity)
    assert identity.principal == "svc-1"
    assert identity.groups == ("idp:ops", "idp:reader")
    assert identity.attributes == {"team": "blue"}
    assert identity.expires_at == payload["exp"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"lifetime": -120}, Reason.CREDENTIAL_EXPIRED),
        ({"issuer": "https://evil.example"}, Reason.UNTRUSTED_ISSUER),
        ({"aud": "another-service"}, Reason.INVALID_TOKEN),
        ({"nbf": 4_000_000_000}, Reason.INVALID_TOKEN),
    ],
    ids=["expired", "wrong-issuer", "wrong-audience", "not-yet-valid"],
)
async def test_tokens_not_meant_for_us_are_refused(
    jwks: JwksServer,
    open_backend: Open,
    policy: PolicySnapshot,
    change: dict[str, Any],
    reason: Reason,
) -> None:
    """A correctly signed token still has to be current, from our issuer, and for us."""
    backend = open_backend(jwks_url=jwks.url)
    lifetime = change.pop("lifetime", 300)
    issuer = change.pop("issuer", ISSUER)
    token = mint(jwks.keys[0], claims(lifetime=lifetime, issuer=issuer, **change))
    assert await refused(backend, token, policy) is reason


async def test_leeway_tolerates_a_little_clock_skew(
    jwks: JwksServer, idp_keys: Keys, open_backend: Open, policy: PolicySnapshot
) -> None:
    """Clocks drift; a token that expired 10 s ago passes with 30 s of leeway."""
    backend = open_backend(jwks_url=jwks.url, leeway="30s")
    token = mint(idp_keys[0], claims(lifetime=-10))
    assert isinstance(await login(backend, token, policy), Identity)


async def test_required_claims_are_required(
    jwks: JwksServer, idp_keys: Keys, open_backend: Open, policy: PolicySnapshot
) -> None:
    """A token without sub cannot name anyone; an issuer may require more claims."""
    backend = open_backend(jwks_url=jwks.url, required_claims=["exp", "iat", "sub", "tenant"])
    no_sub = claims()
    del no_sub["sub"]
    assert await refused(backend, mint(idp_keys[0], no_sub), policy) is Reason.INVALID_TOKEN
    assert await refused(backend, mint(idp_keys[0], claims()), policy) is Reason.INVALID_TOKEN
    ok = mint(idp_keys[0], claims(tenant="t1"))
    assert isinstance(await login(backend, ok, policy), Identity)


async def test_alg_none_is_refused(
    jwks: JwksServer, open_backend: Open, policy: PolicySnapshot
) -> None:
    """An unsigned token must never pass, whatever it claims."""
    backend = open_backend(jwks_url=jwks.url)
    token = jwt.encode(claims(), None, algorithm="none")
    assert await refused(backend, token, policy) is Reason.INVALID_TOKEN


async def test_hs256_signed_with_the_public_key_is_refused(
    jwks: JwksServer, idp_keys: Keys, open_backend: Open, policy: PolicySnapshot
) -> None:
    """The classic confusion: the published RSA key used as an HMAC secret."""
    backend = open_backend(jwks_url=jwks.url, algorithms=["RS256", "ES256"])
    public_pem = (
        idp_keys[0]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token = _hs256(json.dumps(claims()).encode(), public_pem, "rsa-1")
    assert await refused(backend, token, policy) is Reason.INVALID_TOKEN


def _hs256(payload: bytes, secret: bytes, kid: str) -> str:
    """An HS256 JWS by hand: PyJWT rightly refuses to use a PEM public key as an HMAC key."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()) + "." + b64(payload)
    )
    signature = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(signature)


async def test_a_signature_by_another_key_under_a_known_kid_is_refused(
    jwks: JwksServer, open_backend: Open, policy: PolicySnapshot
) -> None:
    """Knowing a kid is not knowing its private key."""
    backend = open_backend(jwks_url=jwks.url)
    forged = mint(SigningKey.rsa("rsa-1"), claims())
    assert await refused(backend, forged, policy) is Reason.INVALID_TOKEN


async def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval(
    jwks: JwksServer, idp_keys: Keys, open_backend: Open, policy: PolicySnapshot
) -> None:
    """Made-up kids must not turn into a flood of requests to the identity provider."""
    backend = open_backend(jwks_url=jwks.url, backend={"jwks_refresh_min_interval": "5s"})
    assert isinstance(await login(backend, mint(idp_keys[0], claims()), policy), Identity)
    stranger = SigningKey.ec("made-up")
    for number in range(10):
        stranger.kid = f"made-up-{number}"
        assert await refused(backend, mint(stranger, claims()), policy) is Reason.INVALID_TOKEN
    assert jwks.requests == 1


async def test_a_rotated_key_is_picked_up_and_a_retired_one_dropped(
    jwks: JwksServer, idp_keys: Keys, open_backend: Open, policy: PolicySnapshot
) -> None:
    """Key rotation needs no restart: an unknown kid refreshes the set (after the interval)."""
    backend = open_backend(jwks_url=jwks.url)
    old, new = idp_keys[0], SigningKey.rsa("rsa-2")
    assert isinstance(await login(backend, mint(old, claims()), policy), Identity)
    jwks.keys = [new, idp_keys[1]]
    await asyncio.sleep(0.25)
    assert isinstance(await login(backend, mint(new, claims()), policy), Identity)
    assert await refused(backend, mint(old, claims()), policy) is Reason.INVALID_TOKEN
    assert jwks.requests == 2


async def test_an_unreachable_jwks_fails_closed_and_recovers_by_itself(
    jwks: JwksServer, idp_keys: Keys, open_backend: Open, policy: PolicySnapshot
) -> None:
    """No keys: a fault (not a bad token); keys once fetched survive a later IdP outage."""
    backend = open_backend(jwks_url=jwks.url, backend={"jwks_ttl": "200ms"})
    token = mint(idp_keys[0], claims())
    jwks.fail = True
    with pytest.raises(BackendUnavailableError):
        await login(backend, token, policy)
    jwks.fail = False
    await asyncio.sleep(0.25)
    assert isinstance(await login(backend, token, policy), Identity)
    jwks.fail = True
    await asyncio.sleep(0.25)  # past the TTL: a refresh is attempted and fails
    assert isinstance(await login(backend, token, policy), Identity)


async def test_a_slow_jwks_times_out_off_the_event_loop(
    jwks: JwksServer, idp_keys: Keys, open_backend: Open, policy: PolicySnapshot
) -> None:
    """The fetch runs in a thread with a deadline: the loop keeps serving meanwhile."""
    backend = open_backend(jwks_url=jwks.url, backend={"fetch_timeout": "300ms"})
    jwks.delay = 1.0
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        with pytest.raises(BackendUnavailableError):
            await asyncio.wait_for(login(backend, mint(idp_keys[0], claims()), policy), 1.0)
    finally:
        ticker.cancel()
    assert ticks >= 15


async def test_keys_can_come_from_a_file(
    idp_keys: Keys, open_backend: Open, policy: PolicySnapshot, tmp_path: Path
) -> None:
    """Air-gapped sites and Kubernetes ConfigMaps provide the JWKS as a file."""
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [key.jwk() for key in idp_keys]}))
    backend = open_backend(jwks_file=str(path))
    assert isinstance(await login(backend, mint(idp_keys[1], claims()), policy), Identity)


async def test_opaque_tokens_and_passwords_are_not_the_oidc_backends_business(
    jwks: JwksServer, open_backend: Open, policy: PolicySnapshot
) -> None:
    """Only JWT-shaped credentials reach the OIDC backend."""
    backend = open_backend(jwks_url=jwks.url)
    assert await backend.authenticate(request(token="nac_abc_def"), policy) is None
    assert await backend.authenticate(request(user="a", password="b"), policy) is None
    assert jwks.requests == 0
