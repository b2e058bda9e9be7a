"""The one request builder and the one connection-type table."""

from __future__ import annotations

from typing import get_args

import pytest

from callout.policy.fields import ConnectionType
from callout.protocol import jwt
from callout.protocol.claims import AuthRequest
from callout.protocol.connections import REPORTED_AS, connection_types
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.protocol.requests import client_kind, request_claims
from callout.testing import ServerSimulator

NOW = 1_800_000_000


def _request(**client: str) -> AuthRequest:
    claims = request_claims(
        server={"id": "NSERVER", "name": "n1"},
        client=client,
        user_nkey="UUSER",
        account="ACALLOUT",
        now=NOW,
    )
    return AuthRequest.from_claims(claims)


def test_the_claims_read_back_as_the_request_they_describe() -> None:
    """What the builder lays out is what the service reads: server, client, connect, expiry."""
    claims = request_claims(
        server={"id": "NSERVER", "name": "n1", "tags": ["eu"]},
        client={"host": "10.1.2.3", "name": "app"},
        connect={"user": "alice", "pass": "pw"},
        user_nkey="UUSER",
        account="ACALLOUT",
        now=NOW,
        timeout=5,
    )
    request = AuthRequest.from_claims(claims)
    assert (request.issuer, request.subject, request.expires) == ("NSERVER", "ACALLOUT", NOW + 5)
    assert (request.server.name, request.server.tags) == ("n1", ("eu",))
    assert (request.client.host, request.client.name, request.client.kind) == (
        "10.1.2.3",
        "app",
        "Client",
    )
    assert (request.connect.user, request.connect.password) == ("alice", "pw")


def test_each_call_gives_fresh_dicts() -> None:
    """Tests change the claims before signing; one change must not leak into the next."""
    server = {"id": "NSERVER", "name": "n1"}
    first = request_claims(server=server, user_nkey="U", account="A", now=NOW)
    first["nats"]["server_id"]["id"] = "NOTHER"
    again = request_claims(server=server, user_nkey="U", account="A", now=NOW)
    assert again["nats"]["server_id"]["id"] == server["id"] == "NSERVER"


def test_the_simulator_signs_the_builders_claims() -> None:
    """ServerSimulator adds only the signature: the decoded token is the built request."""
    simulator = ServerSimulator()
    user = KeyPair.generate(KeyRole.USER).public_key
    payload, header = simulator.request(now=NOW, connect={"user": "bob"}, user_nkey=user)
    claims = jwt.decode(payload.decode("ascii"), expected_type="authorization_request")
    assert header is None
    assert claims["iss"] == claims["nats"]["server_id"]["id"] == simulator.key.public_key
    assert claims["nats"]["connect_opts"]["user"] == "bob"
    assert claims["nats"]["user_nkey"] == user


@pytest.mark.parametrize("name", sorted(REPORTED_AS))
def test_a_built_client_of_each_type_reads_back_as_that_type(name: str) -> None:
    """explain builds clients from the table the policy reads them with; IN_PROCESS reads as
    STANDARD because nats-server reports it so."""
    types = connection_types(_request(**client_kind(name)).client)
    expected = "STANDARD" if name == "IN_PROCESS" else name
    assert expected in types
    assert "IN_PROCESS" not in types


def test_an_unknown_kind_is_no_connection_type() -> None:
    """A kind the table does not know matches no allowed type: deny, not guess."""
    assert connection_types(_request(kind="Router").client) == frozenset()
    assert connection_types(_request(type="telnet").client) == frozenset()


def test_the_policy_accepts_exactly_the_types_of_the_table() -> None:
    """The policy schema's names and the request table cannot drift apart."""
    assert set(get_args(ConnectionType)) == set(REPORTED_AS)
