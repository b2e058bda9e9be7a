"""Building the service's parts from settings: the reloadable `Runtime` and the backend chain.

Each builder raises `ConfigError` for anything that cannot work, with the file and the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from callout.backends.base import Backend
from callout.backends.chain import BackendStats, build_chain
from callout.backends.passwords import PasswordVerifier
from callout.errors import ConfigError, PolicyError
from callout.policy.loader import check_policy
from callout.policy.texts import CheckResult
from callout.secretfiles import load_curve_key, load_signing_key
from callout.service.issuer import ConfigModeIssuer, Issuer
from callout.service.keyring import load_operator_issuer
from callout.service.placement import Placement, placement_warnings
from callout.service.runtime import Runtime
from callout.settings import Settings

log = structlog.get_logger("callout.wiring")


def load_issuer(settings: Settings) -> Issuer:
    """The signer for the configured mode, with its keys read from their files."""
    if settings.operator is not None:
        return load_operator_issuer(settings.operator)
    if settings.keys.issuer_seed_file is None:  # settings validation requires it in config mode
        raise ConfigError("keys.issuer_seed_file is not set")
    key = load_signing_key(settings.keys.issuer_seed_file, "issuer seed")
    return ConfigModeIssuer(key, frozenset(settings.accounts))


def system_account_name(settings: Settings) -> str | None:
    """The name under which policies would place users into the system account, if any.

    Config mode: ``system_account`` itself. Operator mode: the configured account whose public
    key is ``system_account`` (whatever it is called there).
    """
    if settings.operator is None:
        return settings.system_account
    for name, account in settings.operator.accounts.items():
        if account.public_key == settings.system_account:
            return name
    return None


def account_names(settings: Settings) -> list[str]:
    """The account names policies may place users into."""
    if settings.operator is not None:
        return list(settings.operator.accounts)
    return list(settings.accounts)


def load_runtime(settings: Settings, policy: Callable[[], CheckResult] | None = None) -> Runtime:
    """Policy, issuer and xkey, read fresh from their files (start-up and every reload); the
    policy from ``policy`` instead of the directory when given (`policy.source: kv`)."""
    result = check_policy(settings.policy.directory) if policy is None else policy()
    if result.snapshot is None or result.merged is None:
        raise ConfigError(f"policy does not load:\n{PolicyError(result.errors)}")
    system_account = system_account_name(settings)
    placement = Placement.from_settings(settings, system_account)
    for issue in placement_warnings(result.merged, result.snapshot, placement):
        log.warning("policy_placement_warning", issue=str(issue))
    xkey_file = settings.keys.xkey_seed_file
    return Runtime(
        policy=result.snapshot,
        issuer=load_issuer(settings),
        xkey=load_curve_key(xkey_file) if xkey_file else None,
        system_account=system_account,
    )


def build_backends(
    settings: Settings,
    verifier: PasswordVerifier,
    on_cache_lookup: Callable[[bool], None] | None = None,
    stats: BackendStats | None = None,
    cache_key: bytes | None = None,
) -> Sequence[Backend]:
    """The configured chain of credential backends, in order (`settings.backends`), each
    reporting its decisions and faults to ``stats``."""
    return build_chain(
        settings, verifier, stats, on_cache_lookup=on_cache_lookup, cache_key=cache_key
    )
