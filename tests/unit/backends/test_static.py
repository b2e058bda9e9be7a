"""The static backend: password and nkey logins against the policy's users."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from callout.backends.static import StaticBackend
from callout.decision import Decision, Identity, Reason
from callout.policy import PolicySnapshot
from callout.protocol.nkeys import KeyPair, KeyRole
from tests.unit.backends.counting import CountingVerifier
from tests.unit.policy.helpers import ALICE_HASH, ALICE_PASSWORD, request, snapshot

SENSOR = KeyPair.generate(KeyRole.USER)
NONCE = "8YYetAqaYN-3ud8"


@pytest.fixture
def verifier() -> Iterator[CountingVerifier]:
    pool = CountingVerifier(max_workers=2)
    yield pool
    pool.close()


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    return snapshot(
        tmp_path,
        f"users:\n  alice:\n    password: '{ALICE_HASH}'\n"
        f"  sensor-1:\n    nkey: {SENSOR.public_key}\n",
    )


def signed(sig: str, nonce: str = NONCE) -> dict[str, str]:
    return {"nkey": SENSOR.public_key, "sig": sig, "nonce": nonce}


def std_sig(nonce: str = NONCE) -> str:
    return base64.b64encode(SENSOR.sign(nonce.encode())).decode()


def url_sig(nonce: str = NONCE) -> str:
    return base64.urlsafe_b64encode(SENSOR.sign(nonce.encode())).decode().rstrip("=")


async def test_right_password_gives_identity(
    verifier: CountingVerifier, policy: PolicySnapshot
) -> None:
    """The basic password login."""
    got = await StaticBackend(verifier).authenticate(
        request(user="alice", password=ALICE_PASSWORD), policy
    )
    assert got == Identity(principal="alice", backend="static")


async def test_wrong_password_is_bad_credentials(
    verifier: CountingVerifier, policy: PolicySnapshot
) -> None:
    """A wrong password is a recognised credential that fails: deny, no fall-through."""
    got = await StaticBackend(verifier).authenticate(request(user="alice", password="nope"), policy)
    assert isinstance(got, Decision)
    assert (got.reason, got.principal) == (Reason.BAD_CREDENTIALS, "alice")
    assert "nope" not in repr(got)


async def test_empty_password_is_bad_credentials(
    verifier: CountingVerifier, policy: PolicySnapshot
) -> None:
    """An empty password never reaches the KDF."""
    got = await StaticBackend(verifier).authenticate(request(user="alice"), policy)
    assert isinstance(got, Decision)
    assert got.reason is Reason.BAD_CREDENTIALS


async def test_unknown_user_costs_a_dummy_verify(
    verifier: CountingVerifier, policy: PolicySnapshot
) -> None:
    """Without the dummy KDF, timing would tell which user names exist."""
    got = await StaticBackend(verifier).authenticate(request(user="mallory", password="x"), policy)
    assert isinstance(got, Decision)
    assert got.reason is Reason.UNKNOWN_USER
    assert verifier.dummies == 1


async def test_password_for_nkey_user_is_unknown_user(
    verifier: CountingVerifier, policy: PolicySnapshot
) -> None:
    """An nkey user has no password; guessing one must look like any unknown user."""
    got = await StaticBackend(verifier).authenticate(request(user="sensor-1", password="x"), policy)
    assert isinstance(got, Decision)
    assert got.reason is Reason.UNKNOWN_USER
    assert verifier.dummies == 1


@pytest.mark.parametrize("encode", [std_sig, url_sig], ids=["standard-padded", "urlsafe-raw"])
async def test_nkey_signed_nonce_gives_identity(
    verifier: CountingVerifier, policy: PolicySnapshot, encode: object
) -> None:
    """nats-py sends standard base64 with padding; the server also accepts URL-safe raw."""
    assert callable(encode)
    got = await StaticBackend(verifier).authenticate(request(**signed(encode())), policy)
    assert got == Identity(principal="sensor-1", backend="static")


async def test_nkey_signature_over_other_nonce_is_bad(
    verifier: CountingVerifier, policy: PolicySnapshot
) -> None:
    """The server does not verify unknown nkeys' signatures; we must, or keys are names."""
    got = await StaticBackend(verifier).authenticate(request(**signed(std_sig("other"))), policy)
    assert isinstance(got, Decision)
    assert (got.reason, got.principal) == (Reason.BAD_NKEY_SIGNATURE, "sensor-1")


async def test_nkey_signature_that_is_not_base64_is_bad(
    verifier: CountingVerifier, policy: PolicySnapshot
) -> None:
    """Garbage in the sig field is a deny, not an exception."""
    got = await StaticBackend(verifier).authenticate(request(**signed("!!not base64!!")), policy)
    assert isinstance(got, Decision)
    assert got.reason is Reason.BAD_NKEY_SIGNATURE


@pytest.mark.parametrize(
    ("missing", "detail"),
    [
        ("sig", "the client sent its nkey without a signature of the nonce"),
        ("nonce", "the server sent no nonce to sign (it needs an nkey user configured)"),
    ],
)
async def test_nkey_without_signature_or_nonce_is_not_signed(
    verifier: CountingVerifier, policy: PolicySnapshot, missing: str, detail: str
) -> None:
    """Without a nonce the server issued, possession of the key is not proven; the audit
    says which side left it out."""
    parts = {**signed(std_sig()), missing: ""}
    got = await StaticBackend(verifier).authenticate(request(**parts), policy)
    assert isinstance(got, Decision)
    assert got.reason is Reason.NKEY_NOT_SIGNED
    assert got.detail == detail


@pytest.mark.parametrize(
    "nkey",
    [
        KeyPair.generate(KeyRole.USER).public_key,
        KeyPair.generate(KeyRole.ACCOUNT).public_key,
        "junk",
    ],
)
async def test_unlisted_or_invalid_nkey_is_unknown_user(
    verifier: CountingVerifier, policy: PolicySnapshot, nkey: str
) -> None:
    """Only user keys listed in the policy log in."""
    got = await StaticBackend(verifier).authenticate(
        request(nkey=nkey, sig=std_sig(), nonce=NONCE), policy
    )
    assert isinstance(got, Decision)
    assert got.reason is Reason.UNKNOWN_USER


async def test_token_or_nothing_is_not_this_backend(
    verifier: CountingVerifier, policy: PolicySnapshot
) -> None:
    """Returning None lets the pipeline try the next backend or deny NO_CREDENTIALS."""
    assert await StaticBackend(verifier).authenticate(request(), policy) is None


async def test_bcrypt_user_with_password_over_72_bytes_is_denied(
    verifier: CountingVerifier, tmp_path: Path
) -> None:
    """bcrypt 5 raises for long passwords; a client must not be able to crash its login."""
    stored = "$2b$04$ZIO36hGHTCY0kqGRKEE7S./EuP4yFj5COBWBzGG4IjxpmdSMFnGM."
    policy = snapshot(tmp_path, f"users:\n  old:\n    password: '{stored}'\n")
    got = await StaticBackend(verifier).authenticate(
        request(user="old", password="x" * 100), policy
    )
    assert isinstance(got, Decision)
    assert got.reason is Reason.BAD_CREDENTIALS
