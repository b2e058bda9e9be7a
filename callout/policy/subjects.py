"""NATS subject matching for the policy tools: does a permission entry cover a subject?

``covers(pattern, subject)`` is true when every subject ``subject`` can stand for is matched
by ``pattern`` (``*`` one token, ``>`` one or more trailing tokens). For a literal subject that
is ordinary matching; for a wildcard subject it is containment. A template token
(``{{user.name}}``) is an unknown single token: only ``*`` or ``>`` cover it, and as a pattern
it covers only itself. ``decide`` applies allow/deny the way nats-server does: deny wins.
"""

from __future__ import annotations

from dataclasses import dataclass

_HOLE = "{{"


def _tokens(subject: str) -> list[str]:
    return subject.split(".")


def covers(pattern: str, subject: str) -> bool:
    """Whether ``pattern`` matches everything ``subject`` matches."""
    wanted, given = _tokens(pattern), _tokens(subject)
    for index, part in enumerate(wanted):
        if part == ">":
            return len(given) > index
        if index >= len(given):
            return False
        other = given[index]
        if part == "*":
            if other == ">":
                return False
            continue
        if other in ("*", ">") or other != part:
            return False
    return len(given) == len(wanted)


def overlaps(left: str, right: str) -> bool:
    """Whether some literal subject matches both ``left`` and ``right``."""
    a, b = _tokens(left), _tokens(right)
    for index in range(max(len(a), len(b))):
        x = a[index] if index < len(a) else None
        y = b[index] if index < len(b) else None
        if x == ">" or y == ">":
            return x is not None and y is not None
        if x is None or y is None:
            return False
        if x == "*" or y == "*" or _HOLE in x or _HOLE in y:
            continue
        if x != y:
            return False
    return True


def split_queue(entry: str) -> tuple[str, str | None]:
    """``"subject queue"`` → (subject, queue); a plain subject has no queue."""
    subject, _, queue = entry.partition(" ")
    return subject, (queue or None)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a subject is permitted, and the entry that decided it ("" = no allow matched)."""

    allowed: bool
    entry: str


def _matches(entry: str, subject: str, queue: str | None) -> bool:
    entry_subject, entry_queue = split_queue(entry)
    if entry_queue is not None and (queue is None or not covers(entry_queue, queue)):
        return False
    return covers(entry_subject, subject)


def subject_verdict(allow: tuple[str, ...], deny: tuple[str, ...], subject: str) -> Verdict:
    """Publish or subscribe to ``subject`` (``"subject queue"`` for a queue subscription)."""
    plain, queue = split_queue(subject)
    for entry in deny:
        entry_subject, entry_queue = split_queue(entry)
        if entry_queue is not None and entry_queue != queue:
            continue
        if covers(entry_subject, plain):
            return Verdict(False, entry)
    for entry in allow:
        if _matches(entry, plain, queue):
            return Verdict(True, entry)
    return Verdict(False, "")
