"""NATS JWT v2: encode, sign, decode and verify (docs/protocol.md#jwts).

Tokens are ``b64url(header).b64url(payload).b64url(ed25519 signature)`` without padding,
signed by the nkey named in ``iss``. ``nats.version`` must be 2; ``jti`` is computed the way
Go's nats-io/jwt computes it, so our tokens are indistinguishable from Go-made ones.
"""

from __future__ import annotations

import binascii
import hashlib
from typing import Any

import orjson

from callout.errors import BadSignatureError, InvalidKeyError, InvalidTokenError
from callout.protocol import base32
from callout.protocol.nkeys import KeyPair, KeyRole, decode_public, verify

MAX_TOKEN_BYTES = 1 << 20

_HEADER_JSON = b'{"typ":"JWT","alg":"ed25519-nkey"}'
_HEADER_B64 = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ"  # b64url(_HEADER_JSON)
_ALGORITHMS = frozenset({"ed25519-nkey", "ed25519"})
_JTI_FIELDS = ("aud", "exp", "iat", "iss", "name", "nbf", "sub")
_SHA512_256 = hashlib.new("sha512_256")  # copied per use: new() looks the name up each time

# Which key role must sign which claim type (docs/protocol.md#signer-roles).
ISSUER_ROLES: dict[str, frozenset[KeyRole]] = {
    "authorization_request": frozenset({KeyRole.SERVER}),
    "authorization_response": frozenset({KeyRole.ACCOUNT}),
    "user": frozenset({KeyRole.ACCOUNT}),
    "account": frozenset({KeyRole.OPERATOR}),
    "operator": frozenset({KeyRole.OPERATOR}),
    "activation": frozenset({KeyRole.ACCOUNT}),
}

Claims = dict[str, Any]


# binascii directly: the base64 module's url-safe helpers add a layer of Python per call.
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def b64url_encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; padding and foreign characters are errors, as in Go."""
    if "=" in text:
        raise InvalidTokenError("padded base64 is not allowed")
    try:
        padded = text.encode("ascii").translate(_FROM_URLSAFE) + b"=" * (-len(text) % 4)
        return binascii.a2b_base64(padded, strict_mode=True)
    except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError
        raise InvalidTokenError("bad base64url") from None


def _go_json(value: Any) -> bytes:
    """Compact UTF-8 JSON as Go's encoding/json writes it (HTML characters escaped)."""
    data = orjson.dumps(value)
    if b"<" in data or b">" in data or b"&" in data or b"\xe2\x80" in data:
        data = (
            data.replace(b"<", b"\\u003c")
            .replace(b">", b"\\u003e")
            .replace(b"&", b"\\u0026")
            .replace("\u2028".encode(), b"\\u2028")
            .replace("\u2029".encode(), b"\\u2029")
        )
    return data


def compute_jti(claims: Claims) -> str:
    """SHA-512/256 over the base claims (not ``nats``), base32 without padding."""
    base = {name: claims[name] for name in _JTI_FIELDS if claims.get(name)}
    digest = _SHA512_256.copy()
    digest.update(_go_json(base))
    return base32.encode(digest.digest())


def encode(claims: Claims, signer: KeyPair, *, iat: int) -> str:
    """Sign ``claims`` with ``signer``: sets ``iss``, ``iat`` and ``jti``."""
    payload = {key: value for key, value in claims.items() if key != "jti"}
    payload["iss"] = signer.public_key
    payload["iat"] = iat
    payload["jti"] = compute_jti(payload)
    body = f"{_HEADER_B64}.{b64url_encode(orjson.dumps(payload))}"
    signature = signer.sign(body.encode("ascii"))
    return f"{body}.{b64url_encode(signature)}"


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(b64url_decode(segment))
    except orjson.JSONDecodeError:
        raise InvalidTokenError(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidTokenError(f"{what} is not a JSON object")
    return value


def decode(token: str, *, expected_type: str | None = None) -> Claims:
    """Decode and verify a v2 token; returns its claims.

    Checks the header, that ``nats.version`` is 2, the Ed25519 signature by ``iss``, that
    ``iss`` has the role the claim type requires and, if given, the claim type.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
        raise InvalidTokenError("token is not a string or is larger than 1 MiB")
    parts = token.split(".")
    if len(parts) != 3:  # noqa: PLR2004 - a JWT has three segments
        raise InvalidTokenError("expected 3 chunks")
    if parts[0] != _HEADER_B64:  # anything but the exact header every NATS signer writes
        _check_header(_json_object(parts[0], "header"))
    claims = _json_object(parts[1], "payload")
    issuer = _check_issuer(claims, expected_type)
    signature = b64url_decode(parts[2])
    if not verify(issuer, f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
        raise BadSignatureError("signature verification failed")
    for name in ("iat", "exp", "nbf"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidTokenError(f"{name} must be an integer")
    return claims


def _check_header(header: dict[str, Any]) -> None:
    typ, alg = header.get("typ"), header.get("alg")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise InvalidTokenError("header typ is not JWT")
    if not isinstance(alg, str) or alg.lower() not in _ALGORITHMS:
        raise InvalidTokenError("header alg is not ed25519-nkey")


def _check_issuer(claims: Claims, expected_type: str | None) -> str:
    """The ``iss`` of a v2 claim set, checked against the role its claim type requires."""
    if "type" in claims:
        raise InvalidTokenError("v1 tokens are not supported")
    nats = claims.get("nats")
    if not isinstance(nats, dict) or nats.get("version") != 2:  # noqa: PLR2004 - JWT v2
        raise InvalidTokenError("nats.version must be 2")
    claim_type = nats.get("type")
    if not isinstance(claim_type, str) or claim_type not in ISSUER_ROLES:
        raise InvalidTokenError("unknown nats.type")
    if expected_type is not None and claim_type != expected_type:
        raise InvalidTokenError(f"expected a {expected_type} token, got {claim_type}")
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise InvalidTokenError("iss is missing")
    try:
        role, _ = decode_public(issuer)
    except InvalidKeyError:
        raise InvalidTokenError("iss is not a public nkey") from None
    if role not in ISSUER_ROLES[claim_type]:
        raise InvalidTokenError(f"a {claim_type} token cannot be signed by a {role.name} key")
    return issuer
