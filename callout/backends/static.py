"""The static backend: users from the policy files, with password hashes or nkeys.

A password user that does not exist costs one dummy argon2 verify, so response time does
not tell which user names exist. An nkey login must prove the key by signing the nonce the
server sent; nats-server does not check that signature for keys it does not know
(docs/protocol.md#nonces), so this backend does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection

from callout.backends.base import LATER, NowResult
from callout.backends.passwords import PasswordVerifier
from callout.decision import BackendName, Decision, Identity, Lane, Reason
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.protocol.nkeys import KeyRole, is_public_key, verify


def _signature(text: str) -> bytes | None:
    """The raw signature from standard base64 with padding or URL-safe raw base64."""
    altchars = b"-_" if "-" in text or "_" in text else b"+/"
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return None


class StaticBackend:
    """Verifies logins against the users of the current policy snapshot.

    ``accepts`` limits the credential kinds it looks at. When a later backend also takes
    passwords (``final=False``), a user name the policy does not know is passed on (None)
    instead of refused.
    """

    name: str = BackendName.STATIC

    def __init__(
        self,
        verifier: PasswordVerifier,
        *,
        accepts: Collection[str] = ("password", "nkey"),
        final: bool = True,
    ) -> None:
        self._verifier = verifier
        self._nkeys = "nkey" in accepts
        self._passwords = "password" in accepts
        self._final = final

    @property
    def takes_passwords(self) -> bool:
        return self._passwords

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        """Identity for a verified static user, a deny for a wrong one, None otherwise."""
        found = self.authenticate_now(request, policy)
        if found is not LATER:
            return found
        return await self._password(request, policy)

    def authenticate_now(self, request: AuthRequest, policy: PolicySnapshot) -> NowResult:
        """`authenticate` without awaiting: nkey logins; a password login is `LATER` (KDF)."""
        if request.connect.nkey:
            return self._nkey(request, policy) if self._nkeys else None
        if request.connect.user and self._passwords:
            if not self._final and policy.password_user(request.connect.user) is None:
                return None
            return LATER
        return None

    def lane(self, request: AuthRequest, policy: PolicySnapshot) -> Lane | None:
        """nkey signatures are cheap; every password login costs a KDF verify (a dummy one for
        an unknown user); None where `authenticate` passes."""
        if request.connect.nkey:
            return Lane.CHEAP if self._nkeys else None
        if request.connect.user and self._passwords:
            if not self._final and policy.password_user(request.connect.user) is None:
                return None
            return Lane.EXPENSIVE
        return None

    def _nkey(self, request: AuthRequest, policy: PolicySnapshot) -> Identity | Decision:
        key = request.connect.nkey
        user = policy.nkey_user(key) if is_public_key(key, KeyRole.USER) else None
        if user is None:
            return Decision.deny(Reason.UNKNOWN_USER, backend=self.name)
        deny = {"backend": self.name, "principal": user.name}
        if not request.client.nonce:
            detail = "the server sent no nonce to sign (it needs an nkey user configured)"
            return Decision.deny(Reason.NKEY_NOT_SIGNED, detail=detail, **deny)
        if not request.connect.sig:
            detail = "the client sent its nkey without a signature of the nonce"
            return Decision.deny(Reason.NKEY_NOT_SIGNED, detail=detail, **deny)
        signature = _signature(request.connect.sig)
        nonce = request.client.nonce.encode("ascii", "replace")
        if signature is None or not verify(key, nonce, signature):
            return Decision.deny(Reason.BAD_NKEY_SIGNATURE, **deny)
        return Identity(principal=user.name, backend=self.name)

    async def _password(self, request: AuthRequest, policy: PolicySnapshot) -> Identity | Decision:
        name, password = request.connect.user, request.connect.password
        user = policy.password_user(name)
        if user is None or user.password_hash is None:
            await self._verifier.verify_dummy(password)
            return Decision.deny(Reason.UNKNOWN_USER, backend=self.name, principal=name)
        deny = {"backend": self.name, "principal": name}
        if not password:
            # Same cost as any other wrong password, so timing does not reveal the user exists.
            await self._verifier.verify_dummy(password)
            return Decision.deny(Reason.BAD_CREDENTIALS, **deny)
        if not await self._verifier.verify(user.password_hash, password):
            return Decision.deny(Reason.BAD_CREDENTIALS, **deny)
        return Identity(principal=user.name, backend=self.name)
