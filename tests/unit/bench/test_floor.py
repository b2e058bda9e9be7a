"""The floor responder's answer: a valid, signed grant (sealed when the request was)."""

from __future__ import annotations

import time

import pytest

from callout.bench.floor import FloorResponder
from callout.errors import BadSignatureError
from callout.protocol import jwt, xkey
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole
from callout.testing import ServerSimulator


@pytest.mark.parametrize("sealed", [False, True])
def test_the_floor_grants_the_requesting_user_signed_by_the_issuer(sealed: bool) -> None:
    server = ServerSimulator()
    issuer = KeyPair.generate(KeyRole.ACCOUNT)
    own = CurveKeyPair.generate() if sealed else None
    user = KeyPair.generate(KeyRole.USER).public_key
    payload, header = server.request(
        now=int(time.time()), seal_for=own.public_key if own else None, user_nkey=user
    )
    reply = FloorResponder(issuer, "APP", own).answer(payload, header)
    if own is not None:
        assert not reply.startswith(b"eyJ")
        reply = xkey.open_box(reply, server.xkey, own.public_key)
    response = jwt.decode(reply.decode(), expected_type="authorization_response")
    assert response["iss"] == issuer.public_key
    assert response["aud"] == server.key.public_key
    granted = jwt.decode(response["nats"]["jwt"], expected_type="user")
    assert (granted["sub"], granted["aud"]) == (user, "APP")


def test_the_floor_refuses_a_forged_request() -> None:
    server = ServerSimulator()
    payload, _ = server.request(now=int(time.time()))
    forged = payload[:-4] + (b"AAAA" if not payload.endswith(b"AAAA") else b"BBBB")
    with pytest.raises(BadSignatureError):
        FloorResponder(KeyPair.generate(KeyRole.ACCOUNT), "APP", None).answer(forged, None)
