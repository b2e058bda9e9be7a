"""What the backends' options share: attribute names usable in templates, and the bound on
outbound calls."""

from __future__ import annotations

TEMPLATE_NAME = r"^[A-Za-z0-9_-]+$"  # usable as {{user.attr.NAME}}
MAX_OUTBOUND = 5.0  # seconds; outbound calls must stay well under the server's auth timeout


def check_outbound(value: float, what: str) -> None:
    """``value`` (seconds) is a usable timeout of an outbound call; else `ValueError`."""
    if not 0 < value <= MAX_OUTBOUND:
        raise ValueError(f"{what} must be more than 0 and at most {MAX_OUTBOUND:g}s")


def is_loopback(host: str | None) -> bool:
    return host in ("localhost", "127.0.0.1", "::1")
