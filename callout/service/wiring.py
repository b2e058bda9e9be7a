"""Building the service's parts from settings: the reloadable `Runtime` and the backend chain.

Each builder raises `ConfigError` for anything that cannot work, with the file and the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from callout.backends.base import Backend
from callout.backends.chain import build_chain
from callout.backends.passwords import PasswordVerifier
from callout.errors import ConfigError, PolicyError
from callout.policy.loader import load_policy
from callout.secrets import load_curve_key, load_signing_key
from callout.service.issuer import ConfigModeIssuer, Issuer
from callout.service.runtime import Runtime
from callout.settings import Settings


def load_issuer(settings: Settings) -> Issuer:
    """The signer for the configured mode, with its keys read from their files."""
    key = load_signing_key(settings.keys.issuer_seed_file, "issuer seed")
    return ConfigModeIssuer(key, frozenset(settings.accounts))


def load_runtime(settings: Settings) -> Runtime:
    """Policy, issuer and xkey, read fresh from their files (start-up and every reload)."""
    try:
        policy = load_policy(settings.policy.directory)
    except PolicyError as error:
        raise ConfigError(f"policy does not load:\n{error}") from None
    xkey_file = settings.keys.xkey_seed_file
    return Runtime(
        policy=policy,
        issuer=load_issuer(settings),
        xkey=load_curve_key(xkey_file) if xkey_file else None,
    )


def build_backends(settings: Settings, verifier: PasswordVerifier) -> Sequence[Backend]:
    """The configured chain of credential backends, in order (`settings.backends`)."""
    return build_chain(settings, verifier)
