"""xkey boxes (``xkv1``): NaCl crypto_box between the server's and the service's X25519 keys.

Layout (docs/protocol.md#xkey-encryption):
``b"xkv1" ‖ nonce(24) ‖ poly1305 tag(16) ‖ ciphertext``. The server's xkey is the same for
every request of one server process, so the precomputed `Box` for each peer key is cached.
"""

from __future__ import annotations

import os
from functools import lru_cache

import nacl.exceptions
import nacl.public

from callout.errors import DecryptionError, InvalidKeyError
from callout.protocol.nkeys import CurveKeyPair, KeyRole, decode_public

VERSION = b"xkv1"
_NONCE_LEN = 24
_TAG_LEN = 16
HEADER = "Nats-Server-Xkey"


@lru_cache(maxsize=256)
def _box(own: CurveKeyPair, peer_public: str) -> nacl.public.Box:
    _, raw = decode_public(peer_public, KeyRole.CURVE)
    try:
        return nacl.public.Box(own.private_key, nacl.public.PublicKey(raw))
    except nacl.exceptions.CryptoError:
        # libsodium refuses a low-order point (e.g. 32 zero bytes): no shared key exists
        raise InvalidKeyError("not a usable curve key (low-order point)") from None


def is_sealed(payload: bytes) -> bool:
    """Whether ``payload`` is an xkey box rather than a plaintext JWT."""
    return payload.startswith(VERSION)


def open_box(payload: bytes, own: CurveKeyPair, sender_public: str) -> bytes:
    """Open a box sealed for ``own`` by the holder of ``sender_public``.

    Raises `InvalidKeyError` when ``sender_public`` is not a usable curve key (malformed or a
    low-order point), `DecryptionError` when the box does not open."""
    if not is_sealed(payload) or len(payload) < len(VERSION) + _NONCE_LEN + _TAG_LEN:
        raise DecryptionError("not an xkv1 box")
    box = _box(own, sender_public)
    nonce_end = len(VERSION) + _NONCE_LEN
    try:
        return box.decrypt(payload[nonce_end:], payload[len(VERSION) : nonce_end])
    except nacl.exceptions.CryptoError:
        raise DecryptionError("could not decrypt input") from None


def seal(
    plaintext: bytes, own: CurveKeyPair, recipient_public: str, nonce: bytes | None = None
) -> bytes:
    """Seal ``plaintext`` for ``recipient_public``; a random nonce unless one is given (tests)."""
    box = _box(own, recipient_public)
    return VERSION + bytes(box.encrypt(plaintext, nonce or os.urandom(_NONCE_LEN)))
