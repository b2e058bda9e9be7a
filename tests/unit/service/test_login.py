"""The service's creds login: our own nkeys sign the nonce; a renewed file is picked up."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from callout.errors import ConfigError
from callout.protocol import jwt
from callout.protocol.accounts import plain_user_claims
from callout.protocol.creds import format_creds
from callout.protocol.nkeys import KeyPair, KeyRole, verify
from callout.secretfiles import write_secret
from callout.service.connector import connect_options
from callout.service.login import CredsLogin, load_creds
from callout.settings import NatsSettings

ACCOUNT = KeyPair.generate(KeyRole.ACCOUNT)
NOW = 1_800_000_000


def _write(path: Path, user: KeyPair, **claims: object) -> str:
    token = jwt.encode({**plain_user_claims(user.public_key, name="svc"), **claims}, ACCOUNT, iat=1)
    if path.exists():
        path.unlink()
    write_secret(path, format_creds(token, user.seed))
    return token


def test_connect_options_carry_our_callbacks_not_the_nkeys_package(tmp_path: Path) -> None:
    """nats-py's own creds support imports `nkeys`, which is only a test dependency here."""
    user = KeyPair.generate(KeyRole.USER)
    token = _write(tmp_path / "svc.creds", user)
    options = connect_options(NatsSettings(creds_file=tmp_path / "svc.creds"))
    assert "user_credentials" not in options
    assert options["user_jwt_cb"]() == token.encode()
    signature = base64.b64decode(options["signature_cb"]("the-nonce"))
    assert verify(user.public_key, b"the-nonce", signature)


def test_a_renewed_creds_file_is_used_on_the_next_connect(tmp_path: Path) -> None:
    """Service JWTs expire; a renewed file must not need a restart."""
    path = tmp_path / "svc.creds"
    _write(path, KeyPair.generate(KeyRole.USER))
    login = CredsLogin(path)
    renewed = KeyPair.generate(KeyRole.USER)
    token = _write(path, renewed)
    signature = base64.b64decode(login.sign_nonce("n"))
    assert verify(renewed.public_key, b"n", signature)
    assert login.user_jwt() == token.encode()


def test_a_broken_renewal_keeps_the_last_good_credentials(tmp_path: Path) -> None:
    """A half-written file during a renewal must not take the service off NATS."""
    path = tmp_path / "svc.creds"
    user = KeyPair.generate(KeyRole.USER)
    _write(path, user)
    login = CredsLogin(path)
    path.write_text("garbage")
    assert verify(user.public_key, b"n", base64.b64decode(login.sign_nonce("n")))


def test_an_expired_service_jwt_is_refused_at_start_up(tmp_path: Path) -> None:
    """The server would refuse it with a bare 'Authorization Violation'; say why instead."""
    path = tmp_path / "svc.creds"
    token = _write(path, KeyPair.generate(KeyRole.USER), exp=NOW - 1)
    with pytest.raises(ConfigError, match="the user JWT expired at 2027") as caught:
        load_creds(path, now=NOW)
    assert token not in str(caught.value)


def test_a_file_that_is_not_a_creds_file_is_refused(tmp_path: Path) -> None:
    """E.g. a seed file given where the creds belong."""
    write_secret(tmp_path / "seed.nk", KeyPair.generate(KeyRole.USER).seed)
    with pytest.raises(ConfigError, match=r"NATS credentials file .*seed.nk: not a creds file"):
        load_creds(tmp_path / "seed.nk", now=NOW)
