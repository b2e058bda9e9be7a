"""nats-server versions: parsing ``server_id.version``, the auth-relevant advisories, and bands.

Pure values, no I/O. Every request names the server's version (`ServerInfo.version`); the
table below says which published advisories leave a policy or the callout itself weaker on
that version, and which release of each line fixed them. The sources are the NATS security
advisories and release notes (CVE ids given); a line we have no fix on record for counts as
affected. Versions that cannot be read (empty, a development build with no numbers) count as
affected by everything: the guard fails closed, never open.

The *band* of a version is its ``major.minor`` line from `LINES`, or ``older``/``newer``/
``unknown``: a label set that stays small whatever a server claims to be (metrics).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Version = tuple[int, int, int]

_VERSION = re.compile(r"^v?(\d{1,4})\.(\d{1,4})\.(\d{1,4})(?:[-+].*)?$")
_PRERELEASE = re.compile(r"^v?\d+\.\d+\.\d+-")


def parse_version(text: str) -> Version | None:
    """``(2, 12, 7)`` from ``"2.12.7"`` / ``"v2.12.7"``; a pre-release (``2.12.7-RC.1``) is
    counted as the release before it, ``(2, 12, 6)``: it may lack the fix. None if unreadable."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    if _PRERELEASE.match(text.strip()):
        patch -= 1  # -1 for x.y.0-RC: below every x.y release
    return major, minor, patch


def format_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


@dataclass(frozen=True, slots=True)
class Advisory:
    """One published weakness: the ``code`` `policy check` prints, where it was published
    (``source``), what goes wrong, and the first fixed release of each line (``fixed``)."""

    code: str
    source: str
    summary: str
    fixed: tuple[Version, ...]

    def affects(self, version: Version | None) -> bool:
        """Whether ``version`` (None = unreadable) lacks the fix."""
        if version is None:
            return True
        line = version[:2]
        for fix in self.fixed:
            if fix[:2] == line:
                return version < fix
        # A line with no fix of its own: affected when a later line had to be fixed.
        return any(fix > version for fix in self.fixed)

    def fixed_text(self) -> str:
        return " / ".join(format_version(fix) for fix in self.fixed)


# Oldest first. Each entry says in our words what the advisory means for a callout deployment.
ADVISORIES: tuple[Advisory, ...] = (
    Advisory(
        code="xkey-broken",
        source="CVE-2023-46129",
        summary=(
            "xkey encryption of callout requests used an all-zero key (2.10.0 to 2.10.3): "
            "anyone on the path could read the credentials in a request"
        ),
        fixed=((2, 10, 4),),
    ),
    Advisory(
        code="mqtt-acl-bypass",
        source="CVE-2026-33217",
        summary=(
            "MQTT clients were not held to subject permissions in the $MQTT namespace: an "
            "MQTT login can act outside its grant"
        ),
        fixed=((2, 11, 15), (2, 12, 6)),
    ),
    Advisory(
        code="queue-deny-bypass",
        source="CVE-2026-58251",
        summary=(
            "a subscribe deny could be bypassed with a queue subscription whose queue name "
            "is not itself denied"
        ),
        fixed=((2, 11, 16), (2, 12, 7), (2, 14, 0)),
    ),
    Advisory(
        code="overlapping-deny",
        source="2.12.7 release notes",
        summary=(
            "a deny wildcard that overlaps an allow wildcard without covering it was not "
            "always enforced"
        ),
        fixed=((2, 12, 7), (2, 14, 0)),
    ),
)
BY_CODE = {advisory.code: advisory for advisory in ADVISORIES}

# The release lines a band names; anything else is ``older``, ``newer`` or ``unknown``.
LINES: tuple[tuple[int, int], ...] = ((2, 10), (2, 11), (2, 12), (2, 14), (2, 15))
BANDS: tuple[str, ...] = ("unknown", "older", *(f"{a}.{b}" for a, b in LINES), "newer")


def band(version: Version | None) -> str:
    """The bounded label for ``version``: its line, or older / newer / unknown."""
    if version is None:
        return "unknown"
    line = version[:2]
    if line in LINES:
        return f"{line[0]}.{line[1]}"
    return "older" if line < LINES[0] else "newer" if line > LINES[-1] else "unknown"


def open_advisories(version: Version | None) -> tuple[Advisory, ...]:
    """The advisories ``version`` is not fixed for (all of them when unreadable)."""
    return tuple(advisory for advisory in ADVISORIES if advisory.affects(version))


def fix_for(advisory: Advisory, version: Version | None) -> str:
    """Which release to move to: the fix on the same line, else the next line's."""
    if version is not None:
        for fix in advisory.fixed:
            if fix[:2] == version[:2] or fix > version:
                return format_version(fix)
    return format_version(advisory.fixed[-1])
