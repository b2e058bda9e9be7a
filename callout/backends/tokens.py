"""The token backend: opaque API tokens from the policy's ``tokens:`` section.

A token in our format (``<prefix>_<id>_<secret>``) is looked up by id and checked with one
HMAC under the pepper, in constant time: microseconds, on the event loop. The principal is
the token *id*; the secret never leaves this module. A token without our prefix is tried
against the legacy bcrypt entries (nats-server's format) in the bounded KDF pool, and only
for clients that sent no user name (MQTT repeats the password as a token).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import MappingProxyType

from callout.backends.base import LATER, NowResult
from callout.backends.passwords import PasswordVerifier
from callout.credentials.presented import opaque_token
from callout.credentials.tokens import hmac_hash, parse_token, token_hash_scheme, verify_hmac
from callout.decision import BackendName, Decision, Identity, Lane, Reason
from callout.errors import ConfigError
from callout.policy.compiler import CompiledToken
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.secretfiles import read_secret

MIN_PEPPER_LENGTH = 32


def read_pepper(path: Path) -> bytes:
    """The token pepper from its secret file; it must be long enough to be a real key."""
    pepper = read_secret(path, "token pepper")
    if len(pepper) < MIN_PEPPER_LENGTH:
        raise ConfigError(
            f"token pepper file {path}: shorter than {MIN_PEPPER_LENGTH} characters;"
            " make one with `callout token pepper --file PATH`"
        )
    return pepper.encode()


class TokenBackend:
    """Verifies API tokens against the tokens of the current policy snapshot."""

    name: str = BackendName.TOKEN

    def __init__(self, pepper: bytes, verifier: PasswordVerifier, *, prefix: str = "nac") -> None:
        if not pepper:
            raise ValueError("the token pepper is empty")
        self._pepper = pepper
        self._verifier = verifier
        self.prefix = prefix
        # compared against when the id is unknown, so that costs what a known id costs
        self._dummy = hmac_hash(pepper, f"{prefix}_unknown_")

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        """Identity for a valid token, a deny for a wrong or unknown one of our format."""
        found = self.authenticate_now(request, policy)
        if found is not LATER:
            return found
        text = opaque_token(request.connect) or ""
        parsed = parse_token(text, self.prefix)
        if parsed is None:
            return await self._legacy(request, text, policy)
        entry = policy.tokens[parsed.id]  # LATER: a known id with a KDF-hashed entry
        if not await self._verifier.verify(entry.hash, parsed.text):
            return Decision.deny(Reason.BAD_CREDENTIALS, backend=self.name, principal=parsed.id)
        return self._identity(entry)

    def authenticate_now(self, request: AuthRequest, policy: PolicySnapshot) -> NowResult:
        """`authenticate` without awaiting: HMAC tokens and unknown ids; a KDF-hashed entry or
        the legacy entries are `LATER`."""
        text = opaque_token(request.connect)
        if not text:
            return None
        parsed = parse_token(text, self.prefix)
        if parsed is None:
            return None if request.connect.user or not policy.legacy_tokens else LATER
        entry = policy.token(parsed.id)
        if entry is None:
            verify_hmac(self._pepper, parsed.text, self._dummy)
            return Decision.deny(Reason.UNKNOWN_TOKEN, backend=self.name, principal=parsed.id)
        if token_hash_scheme(entry.hash) != "hmac-sha256":
            return LATER
        if not verify_hmac(self._pepper, parsed.text, entry.hash):
            return Decision.deny(Reason.BAD_CREDENTIALS, backend=self.name, principal=parsed.id)
        return self._identity(entry)

    def lane(self, request: AuthRequest, policy: PolicySnapshot) -> Lane | None:
        """An HMAC (or an unknown id) is cheap; a bcrypt entry or the legacy entries cost a
        KDF verify each; None where `authenticate` passes."""
        text = opaque_token(request.connect)
        if not text:
            return None
        parsed = parse_token(text, self.prefix)
        if parsed is None:
            if request.connect.user or not policy.legacy_tokens:
                return None
            return Lane.EXPENSIVE
        entry = policy.token(parsed.id)
        if entry is None or token_hash_scheme(entry.hash) == "hmac-sha256":
            return Lane.CHEAP
        return Lane.EXPENSIVE

    async def _legacy(
        self, request: AuthRequest, text: str, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        if request.connect.user or not policy.legacy_tokens:
            return None
        entries = [policy.tokens[token_id] for token_id in policy.legacy_tokens]
        results = await asyncio.gather(*(self._verifier.verify(e.hash, text) for e in entries))
        matched = [entry for entry, ok in zip(entries, results, strict=True) if ok]
        if not matched:
            return Decision.deny(Reason.UNKNOWN_TOKEN, backend=self.name)
        if len(matched) > 1:
            detail = "the token matches several legacy entries"
            return Decision.deny(Reason.BAD_CREDENTIALS, backend=self.name, detail=detail)
        return self._identity(matched[0])

    def _identity(self, entry: CompiledToken) -> Identity:
        return Identity(
            principal=entry.id,
            backend=self.name,
            attributes=MappingProxyType({"owner": entry.owner}),
            expires_at=entry.expires_at,
        )
