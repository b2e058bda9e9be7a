"""The backend chain, built from settings: which backends, in which order, taking which
credential kinds. The pipeline asks them in order; the first that recognises the credential
decides (a recognised but wrong credential is a deny, never passed on to a later backend).

Every backend is wrapped so that each decision it makes is reported as a closed `Reason`
(``allowed`` = credential verified) with its latency; password backends (static, LDAP) sit
behind the shared `DecisionCache`. Backends with optional dependencies are imported only
when configured, with an actionable error when the extra is not installed.

The wrapper also bounds every backend call by the request itself: its deadline is what is
left of the request's ``exp`` (plus ``service.request_leeway``) minus `ANSWER_MARGIN`, the
time kept to sign and publish the answer; a backend's own deadline setting only ever
shortens that. A call cut off there is a fault (`BackendUnavailableError`, metric label
``timeout``), so the client gets a signed deny while the server still listens. And a refused
password login is topped up to the chain's equal cost (`callout.backends.equalcost`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass

import structlog

from callout.backends.base import (
    LATER,
    Backend,
    NowResult,
    ReloadsFiles,
    authenticate_now,
    backend_lane,
)
from callout.backends.cache import CachedBackend, DecisionCache
from callout.backends.equalcost import EqualCost, spent_on
from callout.backends.ldap import Directory, LdapBackend
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.backends.tokens import TokenBackend, read_pepper
from callout.credentials.presented import password_login
from callout.decision import Decision, Identity, Lane, Reason
from callout.errors import BackendUnavailableError, ConfigError
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.secretfiles import read_secret
from callout.settings import (
    BackendSettings,
    LdapBackendSettings,
    OidcBackendSettings,
    Settings,
    StaticBackendSettings,
    TokenBackendSettings,
)
from callout.settings.backends.certificates import CertificateBackendSettings

log = structlog.get_logger("callout.backends")

_EXTRAS = {"ldap": "ldap", "jwt": "oidc", "cryptography": "oidc"}

# Seconds of a request's life kept for signing, sealing and publishing the answer.
ANSWER_MARGIN = 0.1


@dataclass(frozen=True, slots=True)
class BackendReport:
    """One backend decision: ``allowed`` (verified), a deny reason, or a fault; ``error``
    names the fault (``unavailable``, ``timeout``, ``error``) and is empty otherwise."""

    backend: str
    reason: Reason
    duration_s: float
    error: str = ""


class BackendStats:
    """Hands each backend decision's report to the observers (the service's metrics
    subscribe here); it counts nothing itself."""

    def __init__(self) -> None:
        self.observers: list[Callable[[BackendReport], None]] = []

    def record(self, report: BackendReport) -> None:
        for observer in self.observers:
            observer(report)


def request_budget(request: AuthRequest, leeway: float = 0.0, now: float | None = None) -> float:
    """Seconds a backend may still take for ``request`` (may be zero or less)."""
    now = time.time() if now is None else now
    return request.expires + leeway - now - ANSWER_MARGIN


class ReportedBackend:
    """Measures and reports every decision of ``inner``; passes (None) are not decisions.

    Each call is bounded by `request_budget`; a refused password login is topped up to
    ``equal_cost`` (within the same budget).
    """

    def __init__(
        self,
        inner: Backend,
        stats: BackendStats,
        *,
        leeway: float = 0.0,
        equal_cost: EqualCost | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.stats = stats
        self.leeway = leeway
        self.equal_cost = equal_cost

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        spent = spent_on(request)
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + request_budget(request, self.leeway)
        try:
            async with asyncio.timeout_at(deadline):
                result = await self.inner.authenticate(request, policy)
        except BackendUnavailableError as error:
            self._report(Reason.BACKEND_UNAVAILABLE, started, error.detail, error="unavailable")
            raise
        except TimeoutError:
            self._report(Reason.BACKEND_UNAVAILABLE, started, "timed out", error="timeout")
            raise BackendUnavailableError(
                self.name, "no answer before the request expires"
            ) from None
        except Exception as error:
            self._report(Reason.INTERNAL_ERROR, started, type(error).__name__, error="error")
            raise
        if result is not None:
            self._report(Reason.ALLOWED if isinstance(result, Identity) else result.reason, started)
        refused = isinstance(result, Decision) and result.grant is None
        if refused and self.equal_cost is not None and password_login(request.connect):
            # the decision stands whatever happens here; only the time is evened out
            with suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self.equal_cost.top_up(spent)
        return result

    def authenticate_now(self, request: AuthRequest, policy: PolicySnapshot) -> NowResult:
        """`authenticate` without awaiting when the inner backend can, reported the same way;
        `LATER` (nothing reported) when it cannot, when the budget is spent (`authenticate`
        then fails with its timeout), or when a refusal would need its equal-cost top-up."""
        if request_budget(request, self.leeway) <= 0:
            return LATER
        started = time.perf_counter()
        try:
            result = authenticate_now(self.inner, request, policy)
        except BackendUnavailableError as error:
            self._report(Reason.BACKEND_UNAVAILABLE, started, error.detail, error="unavailable")
            raise
        except Exception as error:
            self._report(Reason.INTERNAL_ERROR, started, type(error).__name__, error="error")
            raise
        if result is LATER or result is None:
            return result
        refused = isinstance(result, Decision) and result.grant is None
        if refused and self.equal_cost is not None and password_login(request.connect):
            return LATER  # `authenticate` evens out a refused password login's time
        self._report(Reason.ALLOWED if isinstance(result, Identity) else result.reason, started)
        return result

    def lane(self, request: AuthRequest, policy: PolicySnapshot) -> Lane | None:
        return backend_lane(self.inner, request, policy)

    def _report(self, reason: Reason, started: float, detail: str = "", error: str = "") -> None:
        report = BackendReport(self.name, reason, time.perf_counter() - started, error)
        self.stats.record(report)
        log.debug(
            "backend_decided",
            backend=report.backend,
            reason=reason.value,
            duration_s=round(report.duration_s, 6),
            detail=detail or None,
        )

    def close(self) -> None:
        close_backends([self.inner])


def close_backends(backends: Iterable[object]) -> None:
    """Release what backends hold (thread pools, connections); idempotent."""
    for backend in backends:
        close = getattr(backend, "close", None)
        if callable(close):
            close()


def _missing(error: ImportError) -> ConfigError | ImportError:
    top = (error.name or "").split(".")[0]
    if top not in _EXTRAS:
        return error
    extra = _EXTRAS[top]
    return ConfigError(
        f"the {extra} backend needs the Python package {top!r}:"
        f" pip install 'nats-auth-callout[{extra}]'"
    )


def _ldap(config: LdapBackendSettings, final: bool) -> Backend:
    try:
        from callout.backends.directory import LdapDirectory  # noqa: PLC0415 - optional extra
    except ImportError as error:
        raise _missing(error) from None
    password = read_secret(config.bind_password_file, "LDAP bind password")
    return LdapBackend(LdapDirectory(config, password), final=final)


def _oidc(config: OidcBackendSettings) -> Backend:
    try:
        from callout.backends.oidc import OidcBackend  # noqa: PLC0415 - optional extra
    except ImportError as error:
        raise _missing(error) from None
    return OidcBackend.from_settings(config)


def _cert(config: CertificateBackendSettings) -> Backend:
    try:
        from callout.backends.certificates import CertificateBackend  # noqa: PLC0415 - extra
    except ImportError as error:
        if (error.name or "").split(".")[0] != "cryptography":
            raise
        raise ConfigError(
            "the cert backend needs the Python package 'cryptography':"
            " pip install 'nats-auth-callout[cert]'"
        ) from None
    return CertificateBackend.from_settings(config)


def _build(config: BackendSettings, verifier: PasswordVerifier, *, final: bool) -> Backend:
    if isinstance(config, StaticBackendSettings):
        return StaticBackend(verifier, accepts=config.accepts, final=final)
    if isinstance(config, LdapBackendSettings):
        return _ldap(config, final)
    if isinstance(config, TokenBackendSettings):
        return TokenBackend(read_pepper(config.pepper_file), verifier, prefix=config.prefix)
    if isinstance(config, CertificateBackendSettings):
        return _cert(config)
    return _oidc(config)


def innermost(backend: Backend) -> Backend:
    """The backend inside the reporting and caching wrappers of `build_chain` (``inner``) and
    the sessions' deny-list gate (``backend``)."""
    for _ in range(8):  # wrappers (cache, reporting, gate) nest a level or three
        inner = getattr(backend, "inner", None) or getattr(backend, "backend", None)
        if inner is None:
            break
        backend = inner
    return backend


def reloading(backends: Iterable[Backend]) -> list[ReloadsFiles]:
    """The backends of a chain that re-read files of their own, unwrapped."""
    return [inner for backend in backends if isinstance(inner := innermost(backend), ReloadsFiles)]


def equal_cost_of(backends: Iterable[Backend], verifier: PasswordVerifier) -> EqualCost:
    """The equal cost of a chain: one KDF if a static backend takes passwords, one probe of
    each directory."""
    inner = [innermost(backend) for backend in backends]
    hashes = any(isinstance(b, StaticBackend) and b.takes_passwords for b in inner)
    directories: list[Directory] = [b.directory for b in inner if isinstance(b, LdapBackend)]
    return EqualCost(verifier if hashes else None, directories)


def report_chain(
    backends: Sequence[Backend],
    stats: BackendStats,
    verifier: PasswordVerifier,
    *,
    leeway: float = 0.0,
) -> list[Backend]:
    """``backends`` wrapped for reporting, request budgets and equal-cost denials."""
    equal_cost = equal_cost_of(backends, verifier)
    shared = equal_cost if equal_cost.needed else None
    return [ReportedBackend(b, stats, leeway=leeway, equal_cost=shared) for b in backends]


def build_chain(
    settings: Settings,
    verifier: PasswordVerifier,
    stats: BackendStats | None = None,
    on_cache_lookup: Callable[[bool], None] | None = None,
    cache_key: bytes | None = None,
) -> list[Backend]:
    """The configured backends, in order, wrapped for reporting and (passwords) caching.
    ``cache_key`` keys the decision cache's HMAC (the same on replicas that share it)."""
    stats = stats or BackendStats()
    cache = DecisionCache(
        ttl=settings.decision_cache.ttl,
        max_entries=settings.decision_cache.max_entries,
        on_lookup=on_cache_lookup,
        key=cache_key,
    )
    configs = settings.backends
    chain: list[Backend] = []
    try:
        for index, config in enumerate(configs):
            # a backend refuses unknown users itself only when no later one takes passwords
            final = not any("password" in later.accepts for later in configs[index + 1 :])
            backend = _build(config, verifier, final=final)
            if "password" in config.accepts:
                backend = CachedBackend(backend, cache)
            chain.append(backend)
    except BaseException:
        close_backends(chain)
        raise
    return report_chain(chain, stats, verifier, leeway=settings.service.request_leeway)
