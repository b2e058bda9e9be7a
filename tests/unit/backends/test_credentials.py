"""Which credential kind a request carries: what decides which backends may look at it."""

from __future__ import annotations

import base64
import json

from callout.credentials.presented import bearer_jwt, opaque_token, password_login
from tests.unit.policy.helpers import request


def _jwt(alg: str) -> str:
    header = base64.urlsafe_b64encode(json.dumps({"alg": alg}).encode()).decode().rstrip("=")
    return f"{header}.eyJzdWIiOiJ4In0.c2ln"


def test_a_jwt_shaped_token_is_a_bearer_jwt_not_an_opaque_token() -> None:
    """OIDC tokens arrive through the client's token option; they must reach the OIDC backend."""
    connect = request(token=_jwt("RS256")).connect
    assert bearer_jwt(connect) == connect.auth_token
    assert opaque_token(connect) == ""


def test_an_opaque_token_is_not_a_jwt() -> None:
    """API tokens go to the token backend only."""
    connect = request(token="nac_ABC_secret").connect
    assert opaque_token(connect) == "nac_ABC_secret"
    assert bearer_jwt(connect) == ""


def test_a_nats_user_jwt_in_connect_jwt_is_not_a_bearer_token() -> None:
    """Operator-mode clients send their NATS JWT (ed25519-nkey); that is no OIDC token."""
    assert bearer_jwt(request(jwt=_jwt("ed25519-nkey")).connect) == ""
    assert bearer_jwt(request(jwt=_jwt("RS256")).connect) != ""


def test_a_password_login_needs_a_user_name_and_no_nkey() -> None:
    """An nkey login wins over a user name, as in the static backend; the cache relies on it."""
    assert password_login(request(user="alice", password="pw").connect) == ("alice", "pw")
    assert password_login(request(user="alice", password="pw", nkey="UX").connect) is None
    assert password_login(request(password="pw").connect) is None
