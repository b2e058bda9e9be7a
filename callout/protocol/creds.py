"""NATS creds files: a user JWT and its user seed in one decorated text.

Format: docs/protocol.md#creds-files.

``format_creds`` writes what ``nsc generate creds`` writes; ``parse_creds`` reads it back the
way Go's ``jwt.ParseDecoratedJWT`` does (the first two dash-framed blocks) and checks that the
seed is a user seed belonging to the JWT's subject. Messages never quote the JWT or the seed.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from callout.errors import InvalidKeyError, InvalidTokenError
from callout.protocol import jwt
from callout.protocol.nkeys import KeyPair, KeyRole

_BLOCK = re.compile(r"^\s*-{3,}[^\n]*?-{3,}\s*\n\s*(\S+?)\s*\n\s*-{3,}[^\n]*?-{3,}\s*$", re.M)

_TEMPLATE = """\
-----BEGIN NATS USER JWT-----
{jwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
{seed}
------END USER NKEY SEED------

*************************************************************
"""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user JWT and the key pair of its subject. Both are secrets: never log them."""

    jwt: str = field(repr=False)
    key: KeyPair
    account: str
    expires: int | None

    @property
    def user(self) -> str:
        return self.key.public_key

    def sign_nonce(self, nonce: str) -> bytes:
        """The CONNECT ``sig``: standard base64 of the Ed25519 signature of the nonce."""
        return base64.b64encode(self.key.sign(nonce.encode("ascii")))


def format_creds(user_jwt: str, seed: str) -> str:
    """The text of a creds file for ``user_jwt`` and its user ``seed``."""
    return _TEMPLATE.format(jwt=user_jwt, seed=seed)


def parse_creds(text: str) -> Credentials:
    """The credentials in a creds file's text; `InvalidTokenError`/`InvalidKeyError` otherwise."""
    blocks = _BLOCK.findall(text)
    if len(blocks) < 2:  # noqa: PLR2004 - a JWT block and a seed block
        raise InvalidTokenError("not a creds file: expected a JWT block and a seed block")
    token, seed = blocks[0], blocks[1]
    claims = jwt.decode(token, expected_type="user")
    try:
        key = KeyPair.from_seed(seed, KeyRole.USER)
    except InvalidKeyError as error:
        raise InvalidKeyError(f"the seed block: {error}") from None
    if claims.get("sub") != key.public_key:
        raise InvalidKeyError("the seed does not belong to the JWT's subject")
    nats = claims["nats"]
    account = nats.get("issuer_account") or claims["iss"]
    if not isinstance(account, str):
        raise InvalidTokenError("issuer_account must be a string")
    expires = claims.get("exp")
    return Credentials(token, key, account, expires if isinstance(expires, int) else None)
