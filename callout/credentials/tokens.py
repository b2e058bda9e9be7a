"""Opaque API tokens: the ``<prefix>_<id>_<secret>`` format and its stored hash.

The secret is 256 random bits, so a slow KDF adds nothing (docs/operations.md#tokens): the policy
stores ``hmac-sha256:<base64url>`` = HMAC-SHA256 under a *pepper* (a secret file the policy
repository never sees) of the whole token, and verification is one HMAC and a constant-time
compare. A leaked policy file therefore allows no offline guessing. bcrypt hashes (the
nats-server format) are accepted for tokens migrated from a server config.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

from callout.credentials.passwords import hash_scheme

HMAC_PREFIX = "hmac-sha256:"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$"
_ID = re.compile(ID_PATTERN)
_HMAC = re.compile(r"^hmac-sha256:[A-Za-z0-9_-]{43}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: ids get read aloud
_ID_LENGTH = 10
MAX_TOKEN_LENGTH = 256

TokenScheme = Literal["hmac-sha256", "bcrypt"]


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token in our format: its id (not secret) and the whole text (secret)."""

    id: str
    text: str = field(repr=False)


def parse_token(text: str, prefix: str) -> ParsedToken | None:
    """The token's parts if ``text`` is ``<prefix>_<id>_<secret>``, else None."""
    if len(text) > MAX_TOKEN_LENGTH or not text.startswith(prefix + "_"):
        return None
    token_id, sep, secret = text[len(prefix) + 1 :].partition("_")
    if not sep or not _ID.match(token_id) or not _SECRET.match(secret):
        return None
    return ParsedToken(token_id, text)


def new_token(prefix: str, token_id: str | None = None) -> ParsedToken:
    """A fresh token with 256 random bits of secret and a random id (unless given)."""
    if token_id is None:
        token_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))
    elif not _ID.match(token_id):
        raise ValueError("a token id is letters, digits and '-', at most 64, no '_'")
    return ParsedToken(token_id, f"{prefix}_{token_id}_{secrets.token_urlsafe(32)}")


def _mac(pepper: bytes, token: str) -> bytes:
    return hmac.new(pepper, token.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def hmac_hash(pepper: bytes, token: str) -> str:
    """The policy's stored form of ``token``: ``hmac-sha256:<43 base64url characters>``."""
    return HMAC_PREFIX + base64.urlsafe_b64encode(_mac(pepper, token)).decode().rstrip("=")


def verify_hmac(pepper: bytes, token: str, stored: str) -> bool:
    """Whether ``token`` matches the stored HMAC hash; constant time in the secret."""
    expected = base64.urlsafe_b64decode(stored.removeprefix(HMAC_PREFIX) + "=")
    return hmac.compare_digest(_mac(pepper, token), expected)


def token_hash_scheme(stored: str) -> TokenScheme | None:
    """``hmac-sha256`` or ``bcrypt`` for a valid stored token hash, else None."""
    if _HMAC.match(stored):
        return "hmac-sha256"
    return "bcrypt" if hash_scheme(stored) == "bcrypt" else None
