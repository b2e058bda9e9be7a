"""The service's own NATS login with a creds file, on our nkeys (no PyPI ``nkeys`` needed).

nats-py's built-in ``user_credentials`` imports the ``nkeys`` package; instead we hand it the
two callbacks it calls on every (re)connect: ``signature_cb`` signs the server's nonce and
``user_jwt_cb`` returns the JWT. The file is read again on each connect, so a renewed creds
file is picked up by the next reconnect; if it has become unreadable or invalid, the last good
credentials are used and a warning logged. The JWT and seed never reach a log line.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from callout.errors import ConfigError, InvalidKeyError, InvalidTokenError
from callout.protocol.creds import Credentials, parse_creds
from callout.secretfiles import read_secret

log = structlog.get_logger("callout.login")

_WHAT = "NATS credentials"


def load_creds(path: Path, *, now: float) -> Credentials:
    """The credentials in a creds file; `ConfigError` naming the file and the problem."""
    text = read_secret(path, _WHAT)
    try:
        creds = parse_creds(text)
    except (InvalidTokenError, InvalidKeyError) as error:
        raise ConfigError(f"{_WHAT} file {path}: {error}") from None
    if creds.expires is not None and creds.expires <= now:
        when = datetime.fromtimestamp(creds.expires, UTC).isoformat()
        raise ConfigError(f"{_WHAT} file {path}: the user JWT expired at {when}")
    return creds


class CredsLogin:
    """nats-py connect options that log in as the creds file's user."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.creds = load_creds(path, now=time.time())

    def connect_options(self) -> dict[str, Any]:
        return {"signature_cb": self.sign_nonce, "user_jwt_cb": self.user_jwt}

    def sign_nonce(self, nonce: str) -> bytes:
        """Called first on each connect: re-read the file, then sign with its seed."""
        try:
            self.creds = load_creds(self.path, now=time.time())
        except ConfigError as error:
            log.warning("creds_reload_failed", error=str(error), user=self.creds.user)
        return self.creds.sign_nonce(nonce)

    def user_jwt(self) -> bytes:
        return self.creds.jwt.encode("ascii")
