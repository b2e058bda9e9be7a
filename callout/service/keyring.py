"""Operator mode: reading the signing seeds named in the settings, refusing what cannot work.

Every seed file is read fresh on start-up and on each reload, so a key rotation is: put the
new seed in a file, point ``signing_seed_file`` at it (and list the key under
``signing_keys``), reload. A seed that is not an account seed, or whose key is neither the
account's own nor one of its listed signing keys, is a `ConfigError` naming the setting and the
file: nats-server would reject everything it signs.
"""

from __future__ import annotations

import structlog

from callout.errors import ConfigError, InvalidKeyError
from callout.protocol.nkeys import KeyPair, KeyRole, decode_seed
from callout.secretfiles import read_secret
from callout.service.operator_issuer import AccountSigner, OperatorModeIssuer
from callout.settings import AccountKeys, OperatorSettings, TargetAccount

log = structlog.get_logger("callout.keyring")

_ROLE_NAMES = {
    KeyRole.OPERATOR: "an operator seed (SO...)",
    KeyRole.USER: "a user seed (SU...)",
    KeyRole.SERVER: "a server seed (SN...)",
    KeyRole.CLUSTER: "a cluster seed (SC...)",
    KeyRole.CURVE: "a curve/xkey seed (SX...)",
}


def _signer(where: str, keys: AccountKeys) -> AccountSigner:
    path = keys.signing_seed_file
    what = f"{where}.signing_seed_file"
    text = read_secret(path, what)
    try:
        role, _ = decode_seed(text)
        if role is not KeyRole.ACCOUNT:
            raise ConfigError(
                f"{what} {path}: holds {_ROLE_NAMES[role]}; it must be an account seed (SA...): "
                "the account's own or one of its signing keys'"
            )
        key = KeyPair.from_seed(text, KeyRole.ACCOUNT)
    except InvalidKeyError as error:
        raise ConfigError(f"{what} {path}: {error}") from None
    public = key.public_key
    if public != keys.public_key and public not in keys.signing_keys:
        listed = ", ".join(keys.signing_keys) or "none listed"
        raise ConfigError(
            f"{what} {path}: its key {public} is neither the account key {keys.public_key} "
            f"nor one of {where}.signing_keys ({listed}); nats-server would reject what it signs"
        )
    scoped = isinstance(keys, TargetAccount) and keys.scoped
    if scoped and public == keys.public_key:
        raise ConfigError(
            f"{what} {path}: holds the account's own key, but {where}.scoped is true; only a "
            "signing key can be scoped"
        )
    return AccountSigner(keys.public_key, key, scoped=scoped)


def load_operator_issuer(operator: OperatorSettings) -> OperatorModeIssuer:
    """The operator-mode issuer with every seed read and checked; `ConfigError` otherwise."""
    response = _signer("operator.callout_account", operator.callout_account)
    accounts = {
        name: _signer(f"operator.accounts.{name}", keys) for name, keys in operator.accounts.items()
    }
    log.info(
        "operator_keys_loaded",
        response_key=response.key.public_key,
        signing_keys={name: signer.key.public_key for name, signer in accounts.items()},
    )
    return OperatorModeIssuer(response, accounts)
