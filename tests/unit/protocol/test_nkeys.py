"""nkeys: encodings, checksums and roles against the NATS test-suite known answers."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callout.errors import InvalidKeyError
from callout.protocol import base32
from callout.protocol.nkeys import (
    CurveKeyPair,
    KeyPair,
    KeyRole,
    crc16,
    decode_public,
    decode_seed,
    encode_public,
    encode_seed,
    is_public_key,
    verify,
)
from tests.vectors import load

KNOWN = load("known_answers_nkeys_jwt_xkey.json")


def test_crc16_matches_the_xmodem_check_value() -> None:
    """The checksum is what makes a mistyped key fail loudly instead of meaning another key."""
    assert crc16(b"123456789") == 0x31C3


@pytest.mark.parametrize(
    "case", KNOWN["nkeys_from_nats_test_suite_constants"], ids=lambda c: c["kind"]
)
def test_seeds_from_the_nats_test_suite_derive_their_public_keys(case: dict[str, str]) -> None:
    """Keys must interoperate with Go's nkeys byte for byte."""
    role, raw = decode_seed(case["seed"])
    pair = CurveKeyPair(raw) if role is KeyRole.CURVE else KeyPair(role, raw)
    assert pair.public_key == case["expected_public"]
    assert pair.seed == case["seed"]


@pytest.mark.parametrize("case", KNOWN["fixed_raw_seed_00..1f"]["keys"], ids=lambda c: c["kind"])
def test_every_role_encodes_like_go(case: dict[str, str]) -> None:
    """Each role's prefix bytes and seed header bytes follow docs/protocol.md#nkeys."""
    raw = bytes(range(32))
    role, decoded = decode_seed(case["seed"])
    assert decoded == raw
    assert encode_seed(role, raw) == case["seed"]
    pair = CurveKeyPair(raw) if role is KeyRole.CURVE else KeyPair(role, raw)
    assert pair.public_key == case["public"]


def test_a_flipped_character_fails_the_checksum() -> None:
    """A corrupted key must never decode as some other valid key."""
    key = KeyPair.generate(KeyRole.USER).public_key
    broken = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    with pytest.raises(InvalidKeyError):
        decode_public(broken)


def test_a_key_of_the_wrong_role_is_refused() -> None:
    """An account key where a user key is expected is an error, not a silent mix-up."""
    account = KeyPair.generate(KeyRole.ACCOUNT)
    with pytest.raises(InvalidKeyError, match="expected a user key"):
        decode_public(account.public_key, KeyRole.USER)
    with pytest.raises(InvalidKeyError, match="expected a account seed"):
        KeyPair.from_seed(KeyPair.generate(KeyRole.USER).seed, KeyRole.ACCOUNT)
    with pytest.raises(InvalidKeyError, match="expected a curve seed"):
        CurveKeyPair.from_seed(account.seed)


def test_a_curve_seed_cannot_be_used_to_sign() -> None:
    """xkeys are for boxes only; signing with one is a programming error caught early."""
    with pytest.raises(InvalidKeyError):
        KeyPair.from_seed(CurveKeyPair.generate().seed)


def test_signatures_verify_only_for_the_signed_data() -> None:
    """The nkey-login check rests on this."""
    pair = KeyPair.generate(KeyRole.USER)
    signature = pair.sign(b"nonce")
    assert verify(pair.public_key, b"nonce", signature)
    assert not verify(pair.public_key, b"other", signature)
    assert not verify(pair.public_key, b"nonce", signature[:-1])
    assert not verify(KeyPair.generate(KeyRole.USER).public_key, b"nonce", signature)


@given(
    st.sampled_from([r for r in KeyRole if r is not KeyRole.CURVE]),
    st.binary(min_size=32, max_size=32),
)
def test_seed_and_public_key_round_trip(role: KeyRole, raw: bytes) -> None:
    """Encoding then decoding gives back the same role and bytes, for every role."""
    assert decode_seed(encode_seed(role, raw)) == (role, raw)
    pair = KeyPair(role, raw)
    assert decode_public(pair.public_key, role)[0] is role
    assert encode_public(role, decode_public(pair.public_key)[1]) == pair.public_key


@given(st.text(max_size=80))
def test_garbage_is_never_a_key(text: str) -> None:
    """Arbitrary strings give a typed error or a valid key, never a crash."""
    for decoder in (decode_public, decode_seed):
        with contextlib.suppress(InvalidKeyError):
            decoder(text)
    assert is_public_key(text, KeyRole.USER) in (True, False)


@given(st.binary(max_size=80))
def test_base32_matches_the_standard_library(data: bytes) -> None:
    """Our fast base32 is RFC 4648 base32 without padding, byte for byte, both ways."""
    expected = base64.b32encode(data).decode("ascii").rstrip("=")
    assert base32.encode(data) == expected
    assert base32.decode(expected) == data


@pytest.mark.parametrize(
    "text", ["A", "ABC", "ABCDEF", "AB=", "ab", "A1", " AB", "A_B", "+AB", "ÄB"]
)
def test_base32_refuses_what_is_not_unpadded_base32(text: str) -> None:
    """int(text, 32) alone would accept signs, underscores, spaces and lower case."""
    with pytest.raises(ValueError, match="base32"):
        base32.decode(text)
