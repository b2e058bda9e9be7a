"""Operator-mode start-up checks: a key set-up that cannot work is refused with a message that
names the setting, the file and the fix — never the seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callout.devserver.operator_mode import OperatorModeSetup
from callout.errors import ConfigError
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole
from callout.secretfiles import write_secret
from callout.service.keyring import load_operator_issuer
from callout.settings import load_settings


@pytest.fixture
def setup(tmp_path: Path) -> OperatorModeSetup:
    return OperatorModeSetup(
        tmp_path / "keys",
        4222,
        target_accounts=("APP",),
        scoped_accounts=("SCOPED",),
        signing_keys=True,
    ).write()


def _load(setup: OperatorModeSetup, tmp_path: Path, **changes: Any) -> str:
    values = setup.settings_values(tmp_path)
    for name, change in changes.items():
        values["operator"]["accounts"][name].update(change)
    settings = load_settings(None, **values)
    assert settings.operator is not None
    with pytest.raises(ConfigError) as caught:
        load_operator_issuer(settings.operator)
    return str(caught.value)


def test_a_good_setup_loads_every_signer(setup: OperatorModeSetup, tmp_path: Path) -> None:
    """The baseline the failures below depart from."""
    settings = setup.settings(tmp_path)
    assert settings.operator is not None
    issuer = load_operator_issuer(settings.operator)
    assert issuer.callout_account == setup.public_key("AUTH")
    assert issuer.accounts["APP"].issuer_account == setup.public_key("APP")
    assert issuer.accounts["SCOPED"].scoped


def test_a_missing_seed_file_is_named(setup: OperatorModeSetup, tmp_path: Path) -> None:
    """A target account without its signing seed cannot get a single user in."""
    message = _load(setup, tmp_path, APP={"signing_seed_file": tmp_path / "nope.nk"})
    assert "operator.accounts.APP.signing_seed_file" in message
    assert "nope.nk" in message


@pytest.mark.parametrize(
    ("seed", "role_text"),
    [
        (lambda: KeyPair.generate(KeyRole.USER).seed, "a user seed (SU...)"),
        (lambda: KeyPair.generate(KeyRole.OPERATOR).seed, "an operator seed (SO...)"),
        (lambda: CurveKeyPair.generate().seed, "a curve/xkey seed (SX...)"),
    ],
    ids=["user", "operator", "curve"],
)
def test_a_seed_of_the_wrong_role_is_refused(
    setup: OperatorModeSetup, tmp_path: Path, seed: Any, role_text: str
) -> None:
    """Only account keys sign user JWTs; say which kind of seed the file holds instead."""
    secret = seed()
    write_secret(tmp_path / "wrong.nk", secret)
    message = _load(setup, tmp_path, APP={"signing_seed_file": tmp_path / "wrong.nk"})
    assert f"holds {role_text}; it must be an account seed (SA...)" in message
    assert secret not in message


def test_a_seed_of_another_account_is_refused(setup: OperatorModeSetup, tmp_path: Path) -> None:
    """nats-server would reject every user JWT it signs: refuse to start instead."""
    stranger = KeyPair.generate(KeyRole.ACCOUNT)
    write_secret(tmp_path / "other.nk", stranger.seed)
    message = _load(setup, tmp_path, APP={"signing_seed_file": tmp_path / "other.nk"})
    assert f"its key {stranger.public_key} is neither the account key" in message
    assert "operator.accounts.APP.signing_keys" in message


def test_the_account_key_cannot_be_used_as_a_scoped_key(
    setup: OperatorModeSetup, tmp_path: Path
) -> None:
    """Scopes belong to signing keys; the account key signs with full user permissions."""
    write_secret(tmp_path / "own.nk", setup.accounts["SCOPED"].key.seed)
    message = _load(setup, tmp_path, SCOPED={"signing_seed_file": tmp_path / "own.nk"})
    assert "holds the account's own key, but operator.accounts.SCOPED.scoped is true" in message


def test_a_readable_by_everyone_seed_file_is_refused(
    setup: OperatorModeSetup, tmp_path: Path
) -> None:
    """Seeds are secrets: the same file-mode rule as every other secret file."""
    setup.seed_file("APP").chmod(0o644)
    message = _load(setup, tmp_path)
    assert "readable by everyone" in message
