"""The operator-mode issuer: who signs what, which account a user lands in, scoped keys.

Checked against captured traffic (vectors/operator_mode): the user JWT the server accepted for
a signing-key login and the one for the account key are reproduced field by field.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from callout.decision import Permissions, TimeRange, UserGrant
from callout.protocol import jwt
from callout.protocol.claims import AuthRequest
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.operator_issuer import AccountSigner, OperatorModeIssuer
from tests.vectors import load

NOW = 1_795_359_610


def _keys() -> dict[str, KeyPair]:
    seeds = load("operator_mode/keys.json").items()
    return {name: KeyPair.from_seed(seed) for name, seed in seeds if not seed.startswith("SX")}


def _captured(scenario: str) -> dict[str, Any]:
    records = load("operator_mode/scenarios.json")
    record: dict[str, Any] = next(r for r in records if r["scenario_key"] == scenario)
    return record


def _request(record: dict[str, Any]) -> AuthRequest:
    return AuthRequest.from_claims(jwt.decode(record["request_jwt"]))


GRANT = UserGrant(
    name="alice",
    account="APP",
    expires=NOW + 60,
    permissions=Permissions(
        pub_allow=("foo.>", "$SYS.REQ.USER.INFO"), sub_allow=("foo.>", "_INBOX.>")
    ),
)


def _issuer(app_key: str = "APP_SK", response_key: str = "AUTH") -> OperatorModeIssuer:
    keys = _keys()
    response = AccountSigner(keys["AUTH"].public_key, keys[response_key])
    app = AccountSigner(keys["APP"].public_key, keys[app_key])
    return OperatorModeIssuer(response, {"APP": app})


@pytest.mark.parametrize(("scenario", "key"), [("op-sk", "APP_SK"), ("op-ok", "APP")])
def test_user_jwts_are_what_the_server_accepted_in_the_captures(scenario: str, key: str) -> None:
    """Signing key: iss = the key, issuer_account = the account; account key: no issuer_account."""
    record = _captured(scenario)
    captured = record["response_user_jwt_decoded"]["claims"]
    token = _issuer(key).grant(_request(record), GRANT, now=NOW)
    response = jwt.decode(token, expected_type="authorization_response")
    user = jwt.decode(response["nats"]["jwt"], expected_type="user")
    assert user["iss"] == captured["iss"]
    assert user["sub"] == captured["sub"]
    assert user["nats"].get("issuer_account") == captured["nats"].get("issuer_account")
    for member in ("pub", "sub", "subs", "data", "payload"):
        assert user["nats"][member] == captured["nats"][member]
    assert "aud" not in user  # operator mode places by signer; aud is ignored
    assert response["iss"] == _keys()["AUTH"].public_key
    assert response["aud"] == record["request_decoded"]["claims"]["nats"]["server_id"]["id"]
    assert "issuer_account" not in response["nats"]


def test_a_response_signed_by_a_callout_signing_key_names_the_callout_account() -> None:
    """op-respsk: the server accepts the callout account's signing key.

    docs/protocol.md#response-signers
    """
    record = _captured("op-respsk")
    token = _issuer(response_key="AUTH_SK").refuse(_request(record), "no", now=NOW)
    response = jwt.decode(token, expected_type="authorization_response")
    assert response["iss"] == _keys()["AUTH_SK"].public_key
    assert response["nats"]["issuer_account"] == _keys()["AUTH"].public_key
    assert response["nats"]["error"] == "no"


def test_a_scoped_key_issues_users_with_no_permissions_and_no_limits() -> None:
    """nats-server: 'scoped users require no permissions or limits set' (src, times included)."""
    account, scoped = KeyPair.generate(KeyRole.ACCOUNT), KeyPair.generate(KeyRole.ACCOUNT)
    callout = KeyPair.generate(KeyRole.ACCOUNT)
    issuer = OperatorModeIssuer(
        AccountSigner(callout.public_key, callout),
        {"APP": AccountSigner(account.public_key, scoped, scoped=True)},
    )
    grant = UserGrant(
        name="alice",
        account="APP",
        expires=NOW + 60,
        permissions=GRANT.permissions,
        src=("10.0.0.0/8",),
        times=(TimeRange("08:00:00", "18:00:00"),),
        times_location="UTC",
        connection_types=("STANDARD",),
        tags=("team:a",),
    )
    record = _captured("op-ok")
    response = jwt.decode(issuer.grant(_request(record), grant, now=NOW))
    user = jwt.decode(response["nats"]["jwt"], expected_type="user")
    assert set(user["nats"]) == {"issuer_account", "tags", "type", "version"}
    assert user["nats"]["issuer_account"] == account.public_key
    assert user["iss"] == scoped.public_key
    assert user["name"] == "alice"


def test_the_issuer_never_signs_for_an_account_it_does_not_know() -> None:
    """can_place is the pipeline's question; grant refuses anyway, as a second line."""
    issuer = _issuer()
    assert issuer.can_place("APP")
    assert not issuer.can_place("OTHER")
    assert issuer.account_key("APP") == _keys()["APP"].public_key
    with pytest.raises(ValueError, match="not configured"):
        issuer.grant(_request(_captured("op-ok")), replace(GRANT, account="OTHER"), now=NOW)


def test_signers_refuse_keys_that_cannot_work() -> None:
    """A user key cannot sign user JWTs; an account's own key is never scoped."""
    account = KeyPair.generate(KeyRole.ACCOUNT)
    with pytest.raises(ValueError, match="account keys"):
        AccountSigner(account.public_key, KeyPair.generate(KeyRole.USER))
    with pytest.raises(ValueError, match="cannot be scoped"):
        AccountSigner(account.public_key, account, scoped=True)
    scoped = AccountSigner(account.public_key, KeyPair.generate(KeyRole.ACCOUNT), scoped=True)
    with pytest.raises(ValueError, match="scoped"):
        OperatorModeIssuer(scoped, {})
