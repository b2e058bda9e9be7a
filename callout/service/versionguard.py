"""The server-version guard: every verified request is counted by its server's version band; a
version lacking an advisory's fix (`callout.protocol.versions`) is logged once, and refused
with a signed deny when the settings say so (``server_versions``).

The verdict of each version string is kept in a bounded table: a fleet has a handful of
versions, and a request's version is signed by the server, but nothing here grows without a
bound (past `MAX_VERSIONS` versions a verdict is computed per request and not logged again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from callout.decision import Decision, Reason
from callout.protocol.claims import AuthRequest
from callout.protocol.versions import (
    Advisory,
    Version,
    band,
    fix_for,
    open_advisories,
    parse_version,
)
from callout.settings.versions import ServerVersionSettings, VersionAction

if TYPE_CHECKING:
    from callout.observability.metrics import Metrics

log = structlog.get_logger("callout.versions")

MAX_VERSIONS = 64


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the guard thinks of one ``server_id.version``."""

    text: str
    version: Version | None
    band: str
    advisories: tuple[Advisory, ...]
    below_minimum: bool
    refused: bool

    def detail(self) -> str:
        """Why, for the audit event and the log (no secrets: versions and advisory codes)."""
        shown = self.text or "(none)"
        parts = [
            f"{advisory.code} (fixed in {fix_for(advisory, self.version)})"
            for advisory in self.advisories
        ]
        reason = f"nats-server {shown} lacks fixes: {', '.join(parts)}" if parts else ""
        if self.below_minimum:
            reason = f"nats-server {shown} is below server_versions.minimum" + (
                f"; {reason}" if reason else ""
            )
        return reason


class VersionGuard:
    """Judges the server version of each request, once per version string."""

    def __init__(
        self,
        settings: ServerVersionSettings,
        *,
        metrics: Metrics | None = None,
        max_versions: int = MAX_VERSIONS,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.max_versions = max_versions
        self._minimum = parse_version(settings.minimum) if settings.minimum else None
        self._verdicts: dict[str, Verdict] = {}
        self._full_logged = False

    def verdict(self, text: str) -> Verdict:
        known = self._verdicts.get(text)
        if known is not None:
            return known
        verdict = self._judge(text)
        if len(self._verdicts) < self.max_versions:
            self._verdicts[text] = verdict
            self._report(verdict)
        elif not self._full_logged:
            self._full_logged = True
            log.warning("server_version_table_full", versions=self.max_versions)
        return verdict

    @property
    def known_versions(self) -> int:
        return len(self._verdicts)

    def _judge(self, text: str) -> Verdict:
        version = parse_version(text)
        advisories = open_advisories(version)
        below = self._minimum is not None and (version is None or version < self._minimum)
        action = self.settings.advisories
        refused = below or (action is VersionAction.DENY and bool(advisories))
        return Verdict(text, version, band(version), advisories, below, refused)

    def _report(self, verdict: Verdict) -> None:
        """The once-per-version log line (``ignore`` logs nothing unless refused)."""
        if not verdict.advisories and not verdict.below_minimum:
            return
        if self.settings.advisories is VersionAction.IGNORE and not verdict.refused:
            return
        log.warning(
            "server_version_flagged",
            server_version=verdict.text,
            advisories=[advisory.code for advisory in verdict.advisories],
            refused=verdict.refused,
            detail=verdict.detail(),
        )

    def observe(self, request: AuthRequest) -> Verdict:
        """Count one verified request (metrics) and return its server's verdict."""
        verdict = self.verdict(request.server.version)
        if self.metrics is not None:
            self.metrics.server_version(verdict.band, advisories=bool(verdict.advisories))
        return verdict

    def refusal(self, request: AuthRequest) -> Decision | None:
        """A deny for a request whose server the settings do not accept, else None."""
        verdict = self.verdict(request.server.version)
        if not verdict.refused:
            return None
        return Decision.deny(Reason.SERVER_VERSION_NOT_ACCEPTED, detail=verdict.detail())
