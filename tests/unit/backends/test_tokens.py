"""The token backend: opaque API tokens in our format, and legacy bcrypt tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from callout.backends.passwords import PasswordVerifier
from callout.backends.tokens import TokenBackend, read_pepper
from callout.credentials.tokens import (
    hmac_hash,
    new_token,
    parse_token,
    token_hash_scheme,
    verify_hmac,
)
from callout.decision import Decision, Identity, Reason
from callout.errors import ConfigError
from callout.policy import PolicySnapshot
from tests.unit.policy.helpers import NOW, request, snapshot

PEPPER = b"p" * 32
TOKEN = new_token("nac", "ci-deploy")
LEGACY = "legacy-server-token"


@pytest.fixture
def verifier() -> Iterator[PasswordVerifier]:
    pool = PasswordVerifier(max_workers=2)
    yield pool
    pool.close()


@pytest.fixture
def backend(verifier: PasswordVerifier) -> TokenBackend:
    return TokenBackend(PEPPER, verifier)


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    legacy = bcrypt.hashpw(LEGACY.encode(), bcrypt.gensalt(4)).decode()
    return snapshot(
        tmp_path,
        f"""
        roles:
          deploy: {{publish: {{allow: ["deploy.>"]}}}}
        tokens:
          ci-deploy:
            hash: "{hmac_hash(PEPPER, TOKEN.text)}"
            owner: team-ci
            roles: [deploy]
            expires: "2027-01-15T09:00:00Z"
          old-ci:
            hash: "{legacy}"
            owner: team-legacy
            roles: [deploy]
        """,
    )


def test_token_format_round_trips_and_rejects_other_shapes() -> None:
    """Only ``<prefix>_<id>_<secret>`` with our prefix is ours; everything else is not."""
    parsed = parse_token(TOKEN.text, "nac")
    assert parsed is not None
    assert parsed.id == "ci-deploy"
    assert TOKEN.text not in repr(parsed)
    assert parse_token(TOKEN.text, "xyz") is None
    assert parse_token("nac_ci-deploy_short", "nac") is None
    assert parse_token("nac__" + "a" * 43, "nac") is None


def test_stored_hashes_verify_only_the_token_and_only_under_the_pepper() -> None:
    """A leaked policy file is useless without the pepper; a near-miss token never matches."""
    stored = hmac_hash(PEPPER, TOKEN.text)
    assert token_hash_scheme(stored) == "hmac-sha256"
    assert verify_hmac(PEPPER, TOKEN.text, stored)
    assert not verify_hmac(b"q" * 32, TOKEN.text, stored)
    assert not verify_hmac(PEPPER, TOKEN.text[:-1] + "x", stored)


async def test_a_valid_token_logs_in_as_its_id_with_its_expiry(
    backend: TokenBackend, policy: PolicySnapshot
) -> None:
    """The principal is the token id (never the secret); the token's expiry caps the JWT."""
    identity = await backend.authenticate(request(token=TOKEN.text), policy)
    assert isinstance(identity, Identity)
    assert identity.principal == "ci-deploy"
    assert identity.attributes["owner"] == "team-ci"
    assert identity.expires_at == NOW + 3600
    decision = policy.authorize(identity, request(token=TOKEN.text), NOW)
    assert decision.grant is not None
    assert decision.grant.expires == NOW + 3600  # min(token expiry, default 1h)
    assert decision.grant.permissions.pub_allow == ("deploy.>",)


async def test_an_expired_token_is_refused(backend: TokenBackend, policy: PolicySnapshot) -> None:
    """A token past its expires date must not log in, whatever its secret."""
    identity = await backend.authenticate(request(token=TOKEN.text), policy)
    assert isinstance(identity, Identity)
    later = policy.authorize(identity, request(token=TOKEN.text), NOW + 3600)
    assert later.reason is Reason.CREDENTIAL_EXPIRED


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (TOKEN.text[:-2] + "xx", Reason.BAD_CREDENTIALS),
        (new_token("nac", "stranger").text, Reason.UNKNOWN_TOKEN),
        ("not-a-token-we-issued", Reason.UNKNOWN_TOKEN),
    ],
    ids=["wrong-secret", "unknown-id", "unknown-legacy"],
)
async def test_wrong_or_unknown_tokens_are_refused(
    backend: TokenBackend, policy: PolicySnapshot, token: str, reason: Reason
) -> None:
    """A token of our format, or any token while legacy entries exist, is decided here."""
    decision = await backend.authenticate(request(token=token), policy)
    assert isinstance(decision, Decision)
    assert decision.reason is reason
    assert token not in repr(decision)


async def test_a_legacy_bcrypt_token_logs_in(backend: TokenBackend, policy: PolicySnapshot) -> None:
    """Tokens migrated from a nats-server config keep working until re-issued."""
    identity = await backend.authenticate(request(token=LEGACY), policy)
    assert isinstance(identity, Identity)
    assert identity.principal == "old-ci"


async def test_legacy_tokens_are_not_tried_for_clients_with_a_user_name(
    backend: TokenBackend, policy: PolicySnapshot
) -> None:
    """MQTT repeats the password as a token; that must not cost a bcrypt scan per login."""
    found = await backend.authenticate(request(user="bob", password=LEGACY, token=LEGACY), policy)
    assert found is None


async def test_other_credentials_are_not_the_token_backends_business(
    backend: TokenBackend, policy: PolicySnapshot
) -> None:
    """Passwords and JWTs pass through to the backends that take them."""
    assert await backend.authenticate(request(user="alice", password="pw"), policy) is None
    assert await backend.authenticate(request(token="eyJhbGciOi.eyJzdWIi.c2ln"), policy) is None


def test_a_short_pepper_is_a_configuration_error(tmp_path: Path) -> None:
    """A guessable pepper would make the stored hashes guessable too."""
    pepper = tmp_path / "pepper"
    pepper.write_text("short")
    pepper.chmod(0o600)
    with pytest.raises(ConfigError, match="shorter than 32"):
        read_pepper(pepper)
