"""The one duration grammar, shared by the settings and the policy.

A duration is one or more parts ``<number><unit>``, the largest unit first and each unit once:
``250ms``, ``1.5s``, ``90s``, ``30m``, ``1h30m``, ``2d``. Units: ``d h m s ms``. A number is
digits with an optional fraction (``1.5h``): no sign, no exponent, ASCII digits only.

The two places differ in one thing each, on purpose:

- settings (`Seconds`) also take a bare number as seconds (``90``, ``0.25``, or a YAML number),
  as environment variables and older files write them, and take zero (``ttl: 0`` = off);
- the policy (`callout.policy.fields.DurationWithUnit`) requires the unit: a bare ``600`` in
  a policy could mean seconds, minutes or the nanoseconds of a NATS JWT; and it must be more
  than zero.

Never negative, never more than `MAX_SECONDS` (``36500d``, 100 years), never NaN or infinite.
Messages never repeat the value (it could be a secret typed into the wrong key).
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
MAX_SECONDS = 36500 * 86400.0
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_PART = re.compile(rf"({_NUMBER})\s*(ms|d|h|m|s)\s*")  # ms before m
_BARE = re.compile(rf"{_NUMBER}")
# The shape for editors (JSON schema); the order of units is checked by the parser.
PATTERN = rf"^(?:{_NUMBER}(?:ms|s|m|h|d))+$"

WITH_UNIT = "a number with a unit such as 500ms, 1.5s, 90s, 30m, 1h or 1h30m (units ms s m h d)"
BARE_OR_WITH_UNIT = f"a number of seconds (90, 0.25) or {WITH_UNIT}"


def parse_seconds(value: object, *, bare_seconds: bool) -> float:
    """Seconds (``>= 0``) from a duration; ``bare_seconds`` lets a number without a unit count
    seconds. Else `ValueError` saying what a duration looks like here."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not bare_seconds:
            raise ValueError(f"expected a duration: {WITH_UNIT}; a bare number needs a unit here")
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if math.isnan(seconds):
            raise ValueError(f"expected a duration: {BARE_OR_WITH_UNIT}")
    elif isinstance(value, str):
        seconds = _parse_text(value.strip(), bare_seconds=bare_seconds)
    else:  # pydantic reports a ValueError, not a TypeError, as the value's problem
        expected = BARE_OR_WITH_UNIT if bare_seconds else WITH_UNIT
        raise ValueError(f"expected a duration: {expected}")  # noqa: TRY004 - see above
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_SECONDS:
        raise ValueError("a duration can be at most 36500d (100 years)")
    return seconds


def _parse_text(text: str, *, bare_seconds: bool) -> float:
    expected = BARE_OR_WITH_UNIT if bare_seconds else WITH_UNIT
    if text.startswith("-"):
        raise ValueError("a duration cannot be negative")
    if _BARE.fullmatch(text):
        if not bare_seconds:
            raise ValueError(f"expected a duration: {WITH_UNIT}; a bare number needs a unit here")
        return float(text)
    seconds, position, last = 0.0, 0, -1
    order = list(UNITS)
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise ValueError(f"expected a duration: {expected}")
        rank = order.index(match.group(2))
        if rank <= last:
            raise ValueError("write the units of a duration largest first, each once (1h30m)")
        seconds += float(match.group(1)) * UNITS[match.group(2)]
        position, last = match.end(), rank
    if last < 0:
        raise ValueError(f"expected a duration: {expected}")
    return seconds


def parse_duration(value: object) -> float:
    """Seconds from a duration as the settings (and the command line) write it: ``90``,
    ``"90s"``, ``"500ms"``, ``"1h30m"``, ``"7d"``; zero allowed."""
    return parse_seconds(value, bare_seconds=True)


Seconds = Annotated[float, BeforeValidator(parse_duration)]
"""A setting that is a duration: a float of seconds, from ``90``, ``1.5s``, ``1h30m``..."""
