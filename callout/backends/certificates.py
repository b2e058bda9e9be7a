"""The certificate backend: TLS client certificates, from the request's ``client_tls``.

Takes every request whose client presented a certificate (so its place in the chain decides
whether a certificate or a password sent alongside it counts). Order of checks: the bounds
(number and size of certificates), parsing, then the chain verified against our own CA
bundle and CRLs at the request's time (`callout.credentials.certificates`), then the mapping
rules (`callout.credentials.certrules`). Any problem is a deny; none is an exception.

Lane: cheap. The work is a bounded, known amount of CPU with no I/O and nothing to wait for:
at most ``max_chain_length`` signature checks against keys already in memory (well under a
millisecond each) — the same kind of work as an nkey signature, unlike a KDF, a directory
bind or a key fetch. Reaching it also costs the client a TLS handshake with a certificate the
server accepted.

The CA and CRL files are read at start and again, off the event loop, when they change
(looked at no more than every `REFRESH_INTERVAL` seconds, on a login): CRLs are renewed
often, and a stale one refuses every login it covers. A file that no longer loads is
logged and the last good set stays in use. ``authenticate_now`` (the inline path) decides
the same way while no look is due, and answers `LATER` when one is, so the look starts from
``authenticate``. Reloads are counted by result (``reloaded``,
``reload_failures``: `callout.backends.base.ReloadsFiles`) for the metrics.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import MappingProxyType

import structlog

from callout.backends.base import LATER, NowResult
from callout.credentials import certificates as chains
from callout.credentials.certrules import GroupRule, Mapped, Rule, map_groups, map_identity
from callout.decision import BackendName, Decision, Identity, Lane, Reason
from callout.errors import ConfigError
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.settings.backends.certificates import CertificateBackendSettings, CertificateRule

REFRESH_INTERVAL = 30.0  # seconds between looks at the CA and CRL files
log = structlog.get_logger("callout.backends")
_REASONS = {
    "expired": Reason.CREDENTIAL_EXPIRED,
    "untrusted": Reason.UNTRUSTED_ISSUER,
    "not_yet_valid": Reason.INVALID_CERTIFICATE,
    "invalid": Reason.INVALID_CERTIFICATE,
    "revoked": Reason.INVALID_CERTIFICATE,
}


def _rule(config: CertificateRule) -> Rule:
    pattern = re.compile(config.pattern) if config.pattern is not None else None
    return Rule(config.field, pattern, config.trust_domain)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the {what}: {error.strerror}") from None


Stamp = tuple[tuple[str, int, int, int], ...]


def file_stamp(paths: Iterable[Path]) -> Stamp:
    """What identifies the files' current content (a missing file: all zero)."""
    stamps = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            stamps.append((str(path), 0, 0, 0))
        else:
            stamps.append((str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


def load_anchors(settings: CertificateBackendSettings) -> chains.TrustAnchors:
    """The CA bundles and CRLs the settings name; `ConfigError` naming the file at fault."""
    roots = []
    for path in settings.ca_files:
        try:
            roots += chains.load_certificates(_read(path, "CA bundle"))
        except ValueError:
            raise ConfigError(f"{path}: not a PEM bundle of CA certificates") from None
    crls = []
    for path in settings.crl_files:
        try:
            crls.append(chains.load_crl(_read(path, "CRL")))
        except ValueError:
            raise ConfigError(f"{path}: not a CRL (PEM or DER)") from None
    return chains.TrustAnchors(roots, crls, max_depth=settings.max_chain_length)


class CertificateBackend:
    """Verifies the client's certificate chain and maps it to an identity and groups."""

    name: str = BackendName.CERT

    def __init__(
        self,
        settings: CertificateBackendSettings,
        anchors: chains.TrustAnchors,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.anchors = anchors
        self.identity_rules = tuple(_rule(rule) for rule in settings.identity)
        self.group_rules = tuple(GroupRule(_rule(rule), rule.group) for rule in settings.groups)
        self._clock = clock
        self._files = (*settings.ca_files, *settings.crl_files)
        self._stamp: Stamp | None = None  # None: loaded by the caller, never compared
        self._next_look = clock() + REFRESH_INTERVAL
        self.refreshing: asyncio.Task[bool] | None = None
        self.reloaded = 0  # changed files that loaded (a new set in use)
        self.reload_failures = 0  # changed files that did not (the last good set stayed)

    @classmethod
    def from_settings(
        cls, settings: CertificateBackendSettings, clock: Callable[[], float] = time.time
    ) -> CertificateBackend:
        stamp = file_stamp((*settings.ca_files, *settings.crl_files))
        backend = cls(settings, load_anchors(settings), clock)
        backend._stamp = stamp
        return backend

    def as_of(self, now: float) -> CertificateBackend:
        """This backend deciding as at ``now`` (``policy explain --at``, a policy test's
        ``at``): the same trust anchors and rules, a clock stopped at ``now``, and no looks at
        the files (the stopped clock never reaches the next look)."""
        return CertificateBackend(self.settings, self.anchors, clock=lambda: now)

    def refresh(self) -> bool:
        """Read the CA and CRL files again if they changed (blocking: run it in a thread).
        True when a new set is in use; the last good set stays when the files do not load."""
        stamp = file_stamp(self._files)
        if self._stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp  # a broken file is reported once, not at every look
        try:
            anchors = load_anchors(self.settings)
        except ConfigError as error:
            self.reload_failures += 1
            log.error(  # noqa: TRY400 - the message (file: problem) is the diagnosis
                "certificate_files_reload_failed", backend=self.name, error=str(error)
            )
            return False
        self.anchors = anchors
        self.reloaded += 1
        log.info("certificate_files_reloaded", backend=self.name)
        return True

    def close(self) -> None:
        if self.refreshing is not None:
            self.refreshing.cancel()

    def _look_due(self, now: float) -> bool:
        return now >= self._next_look and self.refreshing is None

    def _look_at_files(self, now: float) -> None:
        if not self._look_due(now):
            return
        self._next_look = now + REFRESH_INTERVAL
        self.refreshing = asyncio.get_running_loop().create_task(asyncio.to_thread(self.refresh))
        self.refreshing.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task[bool]) -> None:
        self.refreshing = None
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self.reload_failures += 1
            log.error(
                "certificate_files_reload_failed", backend=self.name, error=type(error).__name__
            )

    def lane(self, request: AuthRequest, policy: PolicySnapshot) -> Lane | None:
        """Cheap (see the module docstring); None where `authenticate` passes."""
        return Lane.CHEAP if chains.presented(request.tls) else None

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        """Identity for a verified, mapped certificate; a deny for any other; None without."""
        pems = chains.presented(request.tls)
        if not pems:
            return None
        now = self._clock()
        self._look_at_files(now)
        return self.decide(pems, now)

    def authenticate_now(self, request: AuthRequest, policy: PolicySnapshot) -> NowResult:
        """`authenticate` without awaiting: the same decision while the CA and CRL files need
        no look; `LATER` when a look is due (`authenticate` starts it)."""
        pems = chains.presented(request.tls)
        if not pems:
            return None
        now = self._clock()
        if self._look_due(now):
            return LATER
        return self.decide(pems, now)

    def decide(self, pems: tuple[str, ...], now: float) -> Identity | Decision:
        """The identity of the chain ``pems`` (leaf first) at ``now``, or the deny."""
        parsed = chains.parse_chain(
            pems,
            max_certificates=self.settings.max_chain_length,
            max_bytes=self.settings.max_certificate_bytes,
        )
        if isinstance(parsed, chains.Refusal):
            return self._deny(parsed)
        verified = self.anchors.verify(parsed, now)
        if isinstance(verified, chains.Refusal):
            return self._deny(verified)
        fields = chains.certificate_fields(verified.leaf)
        mapped = map_identity(fields, self.identity_rules)
        if not isinstance(mapped, Mapped):
            return Decision.deny(Reason.UNKNOWN_USER, backend=self.name, detail=mapped)
        groups = map_groups(fields, self.group_rules, self.settings.group_prefix)
        return Identity(
            principal=mapped.principal,
            backend=self.name,
            groups=groups,
            attributes=MappingProxyType(mapped.attributes),
            expires_at=int(verified.leaf.not_valid_after_utc.timestamp()),
        )

    def _deny(self, refusal: chains.Refusal) -> Decision:
        return Decision.deny(_REASONS[refusal.problem], backend=self.name, detail=refusal.detail)
