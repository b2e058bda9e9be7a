"""Reading secrets (seeds, passwords) from files: the only way secrets enter the service.

A secret file must exist, be a regular file, and not be readable by everyone. Its content never
appears in an error message.
"""

from __future__ import annotations

import stat
from pathlib import Path

from callout.errors import ConfigError, InvalidKeyError
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole


def read_secret(path: Path, what: str) -> str:
    """The stripped text of a secret file; `ConfigError` naming ``what`` and ``path`` otherwise."""
    try:
        info = path.stat()
    except OSError as error:
        raise ConfigError(f"{what} file {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{what} file {path}: not a regular file")
    if info.st_mode & stat.S_IROTH:
        raise ConfigError(
            f"{what} file {path}: readable by everyone (mode {stat.S_IMODE(info.st_mode):o}); "
            "chmod 600 it (Kubernetes: defaultMode 0400)"
        )
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{what} file {path}: cannot read it as UTF-8 text") from None
    if not text:
        raise ConfigError(f"{what} file {path}: empty")
    return text


def load_signing_key(path: Path, what: str, role: KeyRole = KeyRole.ACCOUNT) -> KeyPair:
    """An Ed25519 key pair from a seed file, which must hold a seed of ``role``."""
    try:
        return KeyPair.from_seed(read_secret(path, what), role)
    except InvalidKeyError as error:
        raise ConfigError(f"{what} file {path}: {error}") from None


def load_curve_key(path: Path, what: str = "xkey seed") -> CurveKeyPair:
    """An X25519 key pair from a seed file holding an ``SX…`` seed."""
    try:
        return CurveKeyPair.from_seed(read_secret(path, what))
    except InvalidKeyError as error:
        raise ConfigError(f"{what} file {path}: {error}") from None


def write_secret(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 holding ``text``; never overwrites an existing file."""
    with path.open("x", encoding="utf-8") as handle:
        path.chmod(0o600)
        handle.write(text + "\n")
