"""Password hash formats: making new hashes, recognising and judging stored ones, and the
blocking verification itself (`callout.backends.passwords` runs it off the event loop).

argon2id with the OWASP parameters is what we write (docs/operations.md#hashing: ~24 ms per
verify); bcrypt (``$2a$``/``$2b$``/``$2y$``) is verified only, for teams migrating from
nats-server configs.
"""

from __future__ import annotations

import re
from typing import Literal

import argon2
import bcrypt

Scheme = Literal["argon2id", "argon2i", "argon2d", "bcrypt"]

OWASP_MEMORY_KIB = 19456
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1
# OWASP lists equivalent argon2id settings from m=47104,t=1 down to m=7168,t=5; all keep
# memory x passes at or above this product.
_MIN_MEMORY_KIB = 7168
_MIN_WORK = 7168 * 5

_HASHER = argon2.PasswordHasher(
    time_cost=OWASP_TIME_COST,
    memory_cost=OWASP_MEMORY_KIB,
    parallelism=OWASP_PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=argon2.Type.ID,
)
_BCRYPT = re.compile(r"^\$2[aby]\$(?P<cost>[0-9]{2})\$[./A-Za-z0-9]{53}$")
_ARGON2 = re.compile(r"^\$(?P<type>argon2id|argon2i|argon2d)\$")


def _utf8(password: str) -> bytes:
    # A JSON string may carry a lone surrogate; it must fail to match, not crash.
    return password.encode("utf-8", "surrogatepass")


def hash_password(password: str) -> str:
    """An argon2id PHC string with the OWASP parameters (m=19456 KiB, t=2, p=1)."""
    return _HASHER.hash(_utf8(password))


def hash_scheme(stored: str) -> Scheme | None:
    """The scheme of a stored hash, or None when it is not a hash we can verify."""
    if _BCRYPT.match(stored):
        return "bcrypt"
    match = _ARGON2.match(stored)
    if match is None:
        return None
    try:
        argon2.extract_parameters(stored)
    except argon2.exceptions.InvalidHashError:
        return None
    found: Scheme = match["type"]  # type: ignore[assignment]  # the regex allows only these
    return found


def hash_weakness(stored: str) -> str | None:
    """Why a valid stored hash should be replaced (for `policy check`), or None."""
    scheme = hash_scheme(stored)
    if scheme == "bcrypt":
        return "legacy bcrypt hash; re-hash with `callout hash-password` (argon2id)"
    if scheme is None:
        return None
    params = argon2.extract_parameters(stored)
    if scheme != "argon2id":
        return f"{scheme} hash; re-hash with `callout hash-password` (argon2id)"
    if params.memory_cost < _MIN_MEMORY_KIB or params.memory_cost * params.time_cost < _MIN_WORK:
        return (
            f"argon2id parameters m={params.memory_cost},t={params.time_cost} are weaker than"
            f" OWASP (m={OWASP_MEMORY_KIB},t={OWASP_TIME_COST}); re-hash with"
            " `callout hash-password`"
        )
    return None


def verify_hash(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (blocking: one KDF); a malformed hash is False."""
    scheme = hash_scheme(stored)
    if scheme == "bcrypt":
        try:
            return bcrypt.checkpw(_utf8(password), stored.encode("ascii"))
        except ValueError:  # bcrypt 5 refuses passwords over 72 bytes
            return False
    if scheme is None:
        return False
    try:
        return _HASHER.verify(stored, _utf8(password))
    except argon2.exceptions.VerificationError:  # also covers a mismatch
        return False
    except argon2.exceptions.InvalidHashError:
        return False
