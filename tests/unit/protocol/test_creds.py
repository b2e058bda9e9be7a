"""Creds files: read what nsc/Go write, refuse what cannot log in, never echo the secrets."""

from __future__ import annotations

import base64

import pytest

from callout.errors import InvalidKeyError, InvalidTokenError
from callout.protocol import jwt
from callout.protocol.accounts import plain_user_claims
from callout.protocol.creds import format_creds, parse_creds
from callout.protocol.nkeys import KeyPair, KeyRole, verify
from tests.vectors import vectors_dir

ACCOUNT = KeyPair.generate(KeyRole.ACCOUNT)


def _creds(user: KeyPair, **claims: object) -> tuple[str, str]:
    token = jwt.encode({**plain_user_claims(user.public_key, name="u"), **claims}, ACCOUNT, iat=1)
    return token, format_creds(token, user.seed)


@pytest.mark.parametrize("name", ["svc", "sentinel", "appuser"])
def test_creds_files_captured_from_a_working_server_parse(name: str) -> None:
    """The vectors' creds logged in to nats-server 2.15.1; we must read them the same way."""
    text = (vectors_dir() / "operator_mode" / f"{name}.creds").read_text()
    creds = parse_creds(text)
    claims = jwt.decode(creds.jwt, expected_type="user")
    assert creds.user == claims["sub"]
    assert creds.account == claims["iss"]


def test_a_round_trip_keeps_the_jwt_and_the_key_and_signs_the_nonce() -> None:
    """The signature nats-server checks is Ed25519 over the nonce, standard base64."""
    user = KeyPair.generate(KeyRole.USER)
    token, text = _creds(user, exp=2_000_000_000)
    creds = parse_creds(text)
    assert creds.jwt == token
    assert creds.expires == 2_000_000_000
    signature = base64.b64decode(creds.sign_nonce("abc-nonce"), validate=True)
    assert verify(user.public_key, b"abc-nonce", signature)


def test_a_signing_key_issued_user_belongs_to_its_issuer_account() -> None:
    """nsc users signed by a signing key name their account in issuer_account."""
    user = KeyPair.generate(KeyRole.USER)
    owner = KeyPair.generate(KeyRole.ACCOUNT).public_key
    claims = plain_user_claims(user.public_key, name="u", issuer_account=owner)
    text = format_creds(jwt.encode(claims, ACCOUNT, iat=1), user.seed)
    assert parse_creds(text).account == owner


def test_a_seed_that_does_not_belong_to_the_jwt_is_refused_without_quoting_it() -> None:
    """Such a file can never log in; the message must not leak the seed or the JWT."""
    user, other = KeyPair.generate(KeyRole.USER), KeyPair.generate(KeyRole.USER)
    token, _ = _creds(user)
    with pytest.raises(InvalidKeyError) as caught:
        parse_creds(format_creds(token, other.seed))
    assert other.seed not in str(caught.value)
    assert token not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    ["", "just text", "-----BEGIN NATS USER JWT-----\nabc\n------END NATS USER JWT------\n"],
    ids=["empty", "no-blocks", "jwt-only"],
)
def test_text_without_both_blocks_is_not_a_creds_file(text: str) -> None:
    """A wrong file (a seed file, a JWT alone) gets a clear error, not a login attempt."""
    with pytest.raises(InvalidTokenError, match="not a creds file"):
        parse_creds(text)


def test_an_account_seed_in_the_seed_block_is_refused() -> None:
    """Only a user seed can sign a user's nonce."""
    user = KeyPair.generate(KeyRole.USER)
    token, _ = _creds(user)
    with pytest.raises(InvalidKeyError, match="user seed"):
        parse_creds(format_creds(token, KeyPair.generate(KeyRole.ACCOUNT).seed))
