"""What the throttle (`callout.service.throttle`) counts and under which keys: the outcomes that
are guesses, those that count against the address only, and the keyed digests of principals
and addresses (never a secret: a token or JWT is keyed by a process-local digest)."""

from __future__ import annotations

import hashlib
import secrets

from callout.decision import DropReason, Reason
from callout.protocol.claims import AuthRequest

# Credential failures: guesses. Counted and kept.
FAILURES = frozenset(
    {
        Reason.NO_CREDENTIALS,
        Reason.UNKNOWN_USER,
        Reason.BAD_CREDENTIALS,
        Reason.BAD_NKEY_SIGNATURE,
        Reason.NKEY_NOT_SIGNED,
        Reason.CREDENTIAL_EXPIRED,
        Reason.UNKNOWN_TOKEN,
        Reason.INVALID_TOKEN,
        Reason.UNTRUSTED_ISSUER,
        Reason.INVALID_CERTIFICATE,
    }
)
# Outcomes that cost us work without a decision: kept against the source address only, and
# only while the address has failed a login within the window.
SOURCE_FAILURES = frozenset({Reason.OVERLOADED, DropReason.EXPIRED})
# Addresses remembered as failing (a small table beside the four bounded by max_tracked; past
# it the oldest is forgotten, and that address's overload is given back until it fails again).
FAILING_TRACKED = 4096
_DIGEST_KEY = secrets.token_bytes(32)


def principal_of(request: AuthRequest) -> tuple[str, str]:
    """(throttle key, display name) of the credential in ``request``; ("", "") if none.

    Tokens and JWTs are keyed by a process-local digest; their display is only their kind.
    """
    connect = request.connect
    if connect.nkey:
        return f"nkey:{connect.nkey}", connect.nkey
    if connect.user:
        return f"user:{connect.user}", connect.user
    for kind, secret in (("token", connect.auth_token), ("jwt", connect.jwt)):
        if secret:
            digest = hashlib.blake2b(secret.encode(), key=_DIGEST_KEY, digest_size=16)
            return f"{kind}:{digest.hexdigest()}", f"({kind})"
    return "", ""


_HASHER = hashlib.blake2b(key=_DIGEST_KEY, digest_size=16)  # keyed once, copied per use


def keyed_hasher(key: bytes | None) -> hashlib.blake2b:
    """The hasher `digest` copies: keyed by ``key`` (replicas sharing counts need the same
    one), or by this process's own key."""
    return _HASHER if key is None else hashlib.blake2b(key=key, digest_size=16)


def digest(text: str, hasher: hashlib.blake2b = _HASHER) -> bytes:
    hasher = hasher.copy()
    hasher.update(text.encode("utf-8", "surrogatepass"))
    return hasher.digest()
