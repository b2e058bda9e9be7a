"""Password hashing and verification: argon2id written, bcrypt read, nothing crashes."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator

import bcrypt
import pytest

from callout.backends.passwords import KDF_NICE, PasswordVerifier
from callout.credentials.passwords import hash_password, hash_scheme, hash_weakness

BCRYPT_HASH = bcrypt.hashpw(b"legacy-pw", bcrypt.gensalt(4)).decode()


@pytest.fixture
def verifier() -> Iterator[PasswordVerifier]:
    pool = PasswordVerifier(max_workers=2)
    yield pool
    pool.close()


def test_hash_password_uses_owasp_argon2id_parameters() -> None:
    """Security teams paste this string; its parameters decide offline cracking cost."""
    stored = hash_password("pw")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hash_weakness(stored) is None


async def test_correct_argon2_password_verifies(verifier: PasswordVerifier) -> None:
    """The basic promise of the verifier."""
    assert await verifier.verify(hash_password("pw"), "pw")


async def test_wrong_argon2_password_is_false(verifier: PasswordVerifier) -> None:
    """A mismatch is a value, not an exception."""
    assert not await verifier.verify(hash_password("pw"), "nope")


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
async def test_bcrypt_variants_verify(verifier: PasswordVerifier, prefix: str) -> None:
    """Hashes from `nats server passwd` and htpasswd tools keep working after migration."""
    assert await verifier.verify(prefix + BCRYPT_HASH[4:], "legacy-pw")


async def test_bcrypt_password_over_72_bytes_is_false(verifier: PasswordVerifier) -> None:
    """bcrypt 5 raises ValueError for long passwords; that must be a deny, never a crash."""
    assert not await verifier.verify(BCRYPT_HASH, "x" * 73)


async def test_malformed_hash_is_false(verifier: PasswordVerifier) -> None:
    """A hash that slipped past validation still fails closed."""
    assert not await verifier.verify("$argon2id$garbage", "pw")


async def test_lone_surrogate_password_is_false(verifier: PasswordVerifier) -> None:
    """JSON can carry unpaired surrogates; encoding them must not crash the request."""
    assert not await verifier.verify(hash_password("pw"), "\ud800")


async def test_dummy_verify_costs_about_a_real_verify(verifier: PasswordVerifier) -> None:
    """Unknown users must not answer measurably faster than known ones."""
    stored = hash_password("pw")
    start = time.perf_counter()
    await verifier.verify(stored, "nope")
    real = time.perf_counter() - start
    start = time.perf_counter()
    await verifier.verify_dummy("nope")
    dummy = time.perf_counter() - start
    assert dummy > real / 3


def test_scheme_and_weakness_recognise_legacy_hashes() -> None:
    """`policy check` marks bcrypt as legacy; plaintext is not a hash at all."""
    assert hash_scheme(BCRYPT_HASH) == "bcrypt"
    assert "legacy bcrypt" in (hash_weakness(BCRYPT_HASH) or "")
    assert hash_scheme("hunter2") is None


def test_zero_workers_is_refused() -> None:
    """A pool without workers would hang every password login."""
    with pytest.raises(ValueError, match="at least 1"):
        PasswordVerifier(max_workers=0)


async def test_kdf_threads_run_at_a_lower_cpu_priority_than_the_event_loop(
    verifier: PasswordVerifier,
) -> None:
    """Wrong passwords keep the KDF threads busy; the event loop (cheap logins, replies) must
    win the CPU from them when both want it."""
    loop = asyncio.get_running_loop()
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    kdf = await loop.run_in_executor(verifier._executor, nice)
    assert kdf == min(19, own + KDF_NICE)
    assert nice() == own  # the loop's own thread is untouched
