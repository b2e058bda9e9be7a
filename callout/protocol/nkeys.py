"""NATS nkeys on PyNaCl: typed Ed25519 and X25519 keys, their seeds and public strings.

Encoding (docs/protocol.md#nkeys): base32 without padding of ``prefix ‖ raw ‖ crc16_le``; a seed
carries the seed marker and the role in two header bytes.
"""

from __future__ import annotations

import binascii
import os
from enum import IntEnum
from functools import lru_cache

import nacl.exceptions
import nacl.public
import nacl.signing

from callout.errors import InvalidKeyError
from callout.protocol import base32

_SEED_MARKER = 18 << 3
_RAW_LEN = 32
_PUBLIC_LEN = 56
_SEED_LEN = 58
_SIGNATURE_LEN = 64


class KeyRole(IntEnum):
    """The prefix byte of each key role; its first base32 letter names the role."""

    OPERATOR = 14 << 3
    ACCOUNT = 0
    USER = 20 << 3
    SERVER = 13 << 3
    CLUSTER = 2 << 3
    CURVE = 23 << 3


_ROLES = {role.value: role for role in KeyRole}  # a dict lookup: KeyRole(byte) is ~20x slower


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0, no reflection), as nkeys uses it.

    ``binascii.crc_hqx`` with an initial value of 0 is exactly this CRC, in C.
    """
    return binascii.crc_hqx(data, 0)


def _b32decode_checked(text: str, expected_len: int, what: str) -> bytes:
    if not isinstance(text, str) or len(text) != expected_len:
        raise InvalidKeyError(f"{what} must be {expected_len} characters")
    try:
        raw = base32.decode(text)
    except ValueError:
        raise InvalidKeyError(f"{what} is not base32") from None
    body, checksum = raw[:-2], int.from_bytes(raw[-2:], "little")
    if crc16(body) != checksum:
        raise InvalidKeyError(f"{what} has a bad checksum")
    return body


def encode_public(role: KeyRole, raw: bytes) -> str:
    """The public key string for ``raw`` (32 bytes) in ``role``."""
    body = bytes([role]) + raw
    return base32.encode(body + crc16(body).to_bytes(2, "little"))


@lru_cache(maxsize=4096)
def decode_public(key: str, role: KeyRole | None = None) -> tuple[KeyRole, bytes]:
    """The role and raw 32 bytes of a public key string; checks length, checksum and role."""
    body = _b32decode_checked(key, _PUBLIC_LEN, "public key")
    found = _ROLES.get(body[0])
    if found is None:
        raise InvalidKeyError("public key has an unknown role")
    if role is not None and found is not role:
        raise InvalidKeyError(f"expected a {role.name.lower()} key, got a {found.name.lower()} key")
    return found, body[1:]


def is_public_key(key: object, role: KeyRole) -> bool:
    """Whether ``key`` is a valid public key string of ``role``."""
    if not isinstance(key, str):
        return False
    try:
        decode_public(key, role)
    except InvalidKeyError:
        return False
    return True


def encode_seed(role: KeyRole, raw: bytes) -> str:
    """The seed string for a raw 32-byte secret in ``role``."""
    header = bytes([_SEED_MARKER | (role >> 5), (role & 0x1F) << 3])
    body = header + raw
    return base32.encode(body + crc16(body).to_bytes(2, "little"))


def decode_seed(seed: str) -> tuple[KeyRole, bytes]:
    """The role and raw 32-byte secret of a seed string; checks marker, checksum and role."""
    body = _b32decode_checked(seed, _SEED_LEN, "seed")
    if body[0] & 0xF8 != _SEED_MARKER:
        raise InvalidKeyError("not a seed")
    role = _ROLES.get(((body[0] & 0x07) << 5) | ((body[1] & 0xF8) >> 3))
    if role is None:
        raise InvalidKeyError("seed has an unknown role")
    return role, body[2:]


class KeyPair:
    """An Ed25519 nkey (operator, account, user, server or cluster) that can sign."""

    __slots__ = ("_signing_key", "public_key", "role")

    def __init__(self, role: KeyRole, raw_seed: bytes) -> None:
        if role is KeyRole.CURVE:
            raise InvalidKeyError("a curve seed cannot sign; use CurveKeyPair")
        self.role = role
        self._signing_key = nacl.signing.SigningKey(raw_seed)
        self.public_key = encode_public(role, bytes(self._signing_key.verify_key))

    @classmethod
    def from_seed(cls, seed: str, role: KeyRole | None = None) -> KeyPair:
        found, raw = decode_seed(seed)
        if role is not None and found is not role:
            raise InvalidKeyError(
                f"expected a {role.name.lower()} seed, got a {found.name.lower()} seed"
            )
        return cls(found, raw)

    @classmethod
    def generate(cls, role: KeyRole) -> KeyPair:
        return cls(role, os.urandom(_RAW_LEN))

    @property
    def seed(self) -> str:
        """The seed string. A secret: never log it."""
        return encode_seed(self.role, bytes(self._signing_key))

    def sign(self, data: bytes) -> bytes:
        return self._signing_key.sign(data).signature

    def __repr__(self) -> str:
        return f"KeyPair({self.role.name}, {self.public_key})"


@lru_cache(maxsize=4096)
def _verify_key(public_key: str) -> nacl.signing.VerifyKey:
    _, raw = decode_public(public_key)
    return nacl.signing.VerifyKey(raw)


def verify(public_key: str, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``data`` by ``public_key``."""
    if len(signature) != _SIGNATURE_LEN:
        return False
    try:
        _verify_key(public_key).verify(data, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


class CurveKeyPair:
    """An X25519 nkey (xkey, ``SX…``/``X…``) used for `xkv1` boxes."""

    __slots__ = ("private_key", "public_key")

    def __init__(self, raw_seed: bytes) -> None:
        self.private_key = nacl.public.PrivateKey(raw_seed)
        self.public_key = encode_public(KeyRole.CURVE, bytes(self.private_key.public_key))

    @classmethod
    def from_seed(cls, seed: str) -> CurveKeyPair:
        role, raw = decode_seed(seed)
        if role is not KeyRole.CURVE:
            raise InvalidKeyError(f"expected a curve seed, got a {role.name.lower()} seed")
        return cls(raw)

    @classmethod
    def generate(cls) -> CurveKeyPair:
        return cls(os.urandom(_RAW_LEN))

    @property
    def seed(self) -> str:
        """The seed string. A secret: never log it."""
        return encode_seed(KeyRole.CURVE, bytes(self.private_key))

    def __repr__(self) -> str:
        return f"CurveKeyPair({self.public_key})"
