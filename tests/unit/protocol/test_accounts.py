"""Operator-mode JWT builders against what a real server accepted (vectors/operator_mode*)."""

from __future__ import annotations

import pytest

from callout.decision import Permissions
from callout.protocol import jwt
from callout.protocol.accounts import (
    DENY_ALL,
    Authorization,
    ScopedKey,
    account_claims,
    operator_claims,
    plain_user_claims,
)
from callout.protocol.nkeys import KeyPair, KeyRole
from tests.vectors import load


def _captured(folder: str, name: str) -> dict[str, object]:
    claims: dict[str, object] = load(f"{folder}/jwts.decoded.json")[name]["claims"]
    return claims


def _keys(folder: str) -> dict[str, KeyPair]:
    seeds = load(f"{folder}/keys.json").items()
    return {name: KeyPair.from_seed(seed) for name, seed in seeds if not seed.startswith("SX")}


def test_the_callout_account_jwt_matches_the_one_the_server_ran_with() -> None:
    """Limits, default permissions, signing keys and the authorization member, as captured."""
    keys = _keys("operator_mode")
    captured = _captured("operator_mode", "AUTH")
    authorization = Authorization(
        auth_users=(keys["SVC_USER"].public_key,), allowed_accounts=(keys["APP"].public_key,)
    )
    claims = account_claims(
        keys["AUTH"].public_key,
        name="AUTH",
        signing_keys=[keys["AUTH_SK"].public_key],
        authorization=authorization,
    )
    assert claims["nats"] == captured["nats"]
    assert claims["sub"] == captured["sub"]


def test_a_scoped_signing_key_entry_matches_the_captured_one() -> None:
    """The scope object nats-server 2.15.1 applied to scoped users."""
    captured = _captured("operator_mode_scoped_signing_key", "APP")
    nats = captured["nats"]
    assert isinstance(nats, dict)
    plain, scoped = nats["signing_keys"]
    template = scoped["template"]
    permissions = Permissions(
        pub_allow=tuple(template["pub"]["allow"]), sub_allow=tuple(template["sub"]["allow"])
    )
    key = ScopedKey(scoped["key"], scoped["role"], permissions, scoped["description"])
    claims = account_claims(str(captured["sub"]), name="APP", signing_keys=[plain, key])
    assert claims["nats"] == nats


def test_sentinels_and_the_operator_jwt_match_the_captured_ones() -> None:
    """A sentinel denies everything; the bearer one needs no nonce signature."""
    keys = _keys("operator_mode")
    for name, bearer in (("sentinel", False), ("bearer_sentinel", True)):
        captured = _captured("operator_mode", name)
        claims = plain_user_claims(
            str(captured["sub"]), name=str(captured["name"]), permissions=DENY_ALL, bearer=bearer
        )
        assert claims["nats"] == captured["nats"]
    operator = _captured("operator_mode", "operator")
    claims = operator_claims(
        keys["OP"].public_key, name="PROTO_OP", system_account=keys["SYS"].public_key
    )
    assert claims["nats"] == operator["nats"]
    token = jwt.encode(claims, keys["OP"], iat=1)
    assert jwt.decode(token, expected_type="operator")["iss"] == keys["OP"].public_key


def test_the_any_account_wildcard_must_stand_alone() -> None:
    """nats-server refuses '*' next to other accounts (docs/protocol.md#operator-mode)."""
    with pytest.raises(ValueError, match="only allowed account"):
        Authorization(auth_users=("U",), allowed_accounts=("*", "A"))
    with pytest.raises(ValueError, match="auth user"):
        Authorization(auth_users=())


def test_jetstream_accounts_carry_unlimited_jetstream_limits_and_others_none() -> None:
    """nats-server enables JetStream for an operator-mode account only when its JWT has
    JetStream limits (-1 = unlimited); an account without them must stay without JetStream
    (checked on the wire by tests/integration/test_intents.py in operator mode)."""
    key = KeyPair.generate(KeyRole.ACCOUNT).public_key
    limits = account_claims(key, name="APP", jetstream=True)["nats"]["limits"]
    assert {k: limits[k] for k in ("mem_storage", "disk_storage", "streams", "consumer")} == {
        "mem_storage": -1,
        "disk_storage": -1,
        "streams": -1,
        "consumer": -1,
    }
    assert limits["conn"] == -1  # the account limits are still there
    plain = account_claims(key, name="APP")["nats"]["limits"]
    assert not {"mem_storage", "disk_storage", "streams", "consumer"} & set(plain)
