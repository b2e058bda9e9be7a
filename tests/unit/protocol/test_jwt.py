"""NATS JWT v2: known answers, real captured requests, round trips and garbage."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callout.errors import BadSignatureError, InvalidTokenError
from callout.protocol import jwt
from callout.protocol.nkeys import KeyPair, KeyRole
from tests.vectors import captured_records, load

KNOWN = load("known_answers_nkeys_jwt_xkey.json")["deterministic_jwt"]
RECORDS = list(captured_records())


def _segment(value: object) -> str:
    return jwt.b64url_encode(json.dumps(value).encode())


def test_encoding_matches_the_known_answer_byte_for_byte() -> None:
    """Same claims, key and time must give exactly Go's token, jti included."""
    signer = KeyPair.from_seed(KNOWN["signer_seed"])
    token = jwt.encode(KNOWN["claims_input_before_iss_iat_jti"], signer, iat=KNOWN["iat"])
    assert token == KNOWN["jwt"]


def test_jti_hashes_only_the_base_claims_in_go_order() -> None:
    """The server computes jti this way; matching it makes our tokens look Go-made."""
    claims = jwt.decode(KNOWN["jwt"])
    assert jwt.compute_jti(claims) == claims["jti"]


@pytest.mark.parametrize(("name", "record"), RECORDS, ids=[n for n, _ in RECORDS])
def test_every_captured_server_request_verifies(name: str, record: dict[str, object]) -> None:
    """Real 2.15.1 requests (config, operator, xkey, TLS, MQTT, leaf) verify and keep their jti."""
    claims = jwt.decode(str(record["request_jwt"]), expected_type="authorization_request")
    assert claims["iss"] == claims["nats"]["server_id"]["id"]
    assert jwt.compute_jti(claims) == claims["jti"]


def test_captured_requests_are_numerous_enough_to_matter() -> None:
    """Guards the parametrised test above against silently running on nothing."""
    assert len(RECORDS) >= 100


def _signed(claims: dict[str, object]) -> tuple[KeyPair, str]:
    signer = KeyPair.generate(KeyRole.ACCOUNT)
    return signer, jwt.encode(claims, signer, iat=1_700_000_000)


def test_a_tampered_payload_fails_signature_verification() -> None:
    """Changing any claim after signing must be detected."""
    _, token = _signed({"sub": "x", "nats": {"type": "user", "version": 2}})
    header, _, signature = token.split(".")
    forged = _segment(
        {"sub": "y", "iss": jwt.decode(token)["iss"], "nats": {"type": "user", "version": 2}}
    )
    with pytest.raises(BadSignatureError):
        jwt.decode(f"{header}.{forged}.{signature}")


def test_padded_base64_is_rejected_like_the_server_does() -> None:
    """nats-server refuses padded segments; so do we."""
    _, token = _signed({"sub": "x", "nats": {"type": "user", "version": 2}})
    with pytest.raises(InvalidTokenError, match="padded"):
        jwt.decode(token + "==")


def test_a_missing_version_is_rejected() -> None:
    """Without nats.version 2 the server switches to v1 signing rules.

    docs/protocol.md#signer-roles
    """
    _, token = _signed({"sub": "x", "nats": {"type": "user"}})
    with pytest.raises(InvalidTokenError, match="version"):
        jwt.decode(token)


def test_a_token_signed_by_the_wrong_role_is_rejected() -> None:
    """A request must be signed by a server key, never by an account or user key."""
    _, token = _signed({"sub": "x", "nats": {"type": "authorization_request", "version": 2}})
    with pytest.raises(InvalidTokenError, match="cannot be signed"):
        jwt.decode(token)


def test_the_expected_claim_type_is_enforced() -> None:
    """A user JWT replayed as a request must not be accepted."""
    _, token = _signed({"sub": "x", "nats": {"type": "user", "version": 2}})
    with pytest.raises(InvalidTokenError, match="expected a authorization_request"):
        jwt.decode(token, expected_type="authorization_request")


def test_float_times_are_rejected() -> None:
    """The server's Go decoder refuses non-integer times; we never accept what it refuses."""
    _, token = _signed({"sub": "x", "exp": 1.5, "nats": {"type": "user", "version": 2}})
    with pytest.raises(InvalidTokenError, match="exp must be an integer"):
        jwt.decode(token)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "sub": st.text(max_size=20),
            "aud": st.text(max_size=20),
            "name": st.text(max_size=20),
            "exp": st.integers(min_value=1, max_value=2**40),
            "nbf": st.integers(min_value=1, max_value=2**40),
        },
    )
)
def test_encode_then_decode_round_trips(claims: dict[str, object]) -> None:
    """Whatever base claims we sign come back unchanged with iss, iat and jti set."""
    body = dict(claims)
    body["nats"] = {"type": "user", "version": 2}
    signer, token = _signed(body)
    decoded = jwt.decode(token)
    assert decoded["iss"] == signer.public_key
    assert decoded["jti"] == jwt.compute_jti(decoded)
    for key, value in body.items():
        assert decoded[key] == value


@settings(max_examples=300)
@given(
    st.one_of(
        st.text(max_size=300), st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())
    )
)
def test_garbage_gives_a_typed_error(text: str) -> None:
    """Any input is a valid token or an InvalidTokenError; never another exception."""
    with contextlib.suppress(InvalidTokenError):
        jwt.decode(text)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=10,
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=10,
    ),
)
def test_structurally_valid_tokens_with_odd_json_give_typed_errors(
    header: object, payload: object
) -> None:
    """JSON of any shape in header or payload is rejected with InvalidTokenError."""
    token = f"{_segment(header)}.{_segment(payload)}.{jwt.b64url_encode(b'x' * 64)}"
    with contextlib.suppress(InvalidTokenError):
        jwt.decode(token)


def test_the_fixed_header_segment_is_the_encoded_header() -> None:
    """decode() skips parsing the header when it is exactly this segment."""
    assert jwt.b64url_encode(jwt._HEADER_JSON) == jwt._HEADER_B64


@pytest.mark.parametrize("segment", ["ab!c", "a", "abc=", "ab c", "é"])
def test_base64url_segments_with_foreign_characters_are_refused(segment: str) -> None:
    """Go's RawURLEncoding refuses them; a lenient decoder would skip them silently."""
    with pytest.raises(InvalidTokenError):
        jwt.b64url_decode(segment)
