"""xkey boxes: the known answer, the real captured request, and tampering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callout.errors import DecryptionError
from callout.protocol import xkey
from callout.protocol.nkeys import CurveKeyPair
from tests.vectors import load, vectors_dir

KNOWN = load("known_answers_nkeys_jwt_xkey.json")["deterministic_xkey_seal"]


def test_sealing_matches_the_known_answer() -> None:
    """Same keys and nonce must give exactly the bytes Go's nkeys Seal gives."""
    sender = CurveKeyPair.from_seed(KNOWN["sender_seed"])
    recipient = CurveKeyPair.from_seed(KNOWN["recipient_seed"])
    sealed = xkey.seal(
        KNOWN["plaintext_ascii"].encode(),
        sender,
        recipient.public_key,
        bytes.fromhex(KNOWN["nonce_hex"]),
    )
    assert sealed.hex() == KNOWN["sealed_hex"]
    assert xkey.open_box(sealed, recipient, sender.public_key) == KNOWN["plaintext_ascii"].encode()


def test_a_real_encrypted_request_opens_with_the_service_key() -> None:
    """The payload a 2.15.1 server sealed opens to the JWT the capture recorded."""
    keys = load("config_mode_xkey/keys.json")
    request = load("config_mode_xkey/05_xkey_request.json")
    payload = (vectors_dir() / "config_mode_xkey/05_xkey_request_payload.bin").read_bytes()
    own = CurveKeyPair.from_seed(keys["xkey_seed"])
    header = next(
        v for k, v in request["message"]["headers"].items() if k.lower() == "nats-server-xkey"
    )
    header = header[0] if isinstance(header, list) else header
    assert xkey.open_box(payload, own, header).decode() == request["decrypted_jwt"]


def test_a_box_for_someone_else_does_not_open() -> None:
    """Only the configured xkey can read requests."""
    sender, recipient, stranger = (
        CurveKeyPair.generate(),
        CurveKeyPair.generate(),
        CurveKeyPair.generate(),
    )
    sealed = xkey.seal(b"secret", sender, recipient.public_key)
    with pytest.raises(DecryptionError):
        xkey.open_box(sealed, stranger, sender.public_key)


@given(st.binary(max_size=200))
def test_garbage_boxes_give_a_typed_error(data: bytes) -> None:
    """Arbitrary bytes never crash the opener."""
    own, peer = CurveKeyPair.generate(), CurveKeyPair.generate()
    with pytest.raises(DecryptionError):
        xkey.open_box(xkey.VERSION + data, own, peer.public_key)
