"""MQTT client-id patterns: which session ids a login may use (``mqtt_client_id``).

An MQTT client id names a session on the server: a client that connects with another's id
takes that session over (CVE-2026-33215). A pattern binds the id to the identity:
``{{user.name}}`` (exactly the user name), ``{{user.name}}-*`` (the user name, a dash, then
anything). ``*`` matches any run of characters, including none. Template values are matched
**literally**: a user named ``a*`` matches only a client id that really starts with ``a*``,
never every id starting with ``a``. An empty value matches nothing (the login is refused).
The variables are those of subject templates (`callout.policy.templates`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from callout.policy.templates import Variable, parse_template

_STAR = "*"
_MAX_LENGTH = 256


@dataclass(frozen=True, slots=True)
class ClientIdPattern:
    """One pattern: literal text, variables and ``*`` wildcards, in order."""

    text: str
    parts: tuple[str | Variable, ...]  # "*" stands alone as a wildcard part

    def matches(self, client_id: str, value: Callable[[Variable], str]) -> bool:
        """Whether ``client_id`` fits, with each variable's ``value`` taken literally."""
        literals = [""]  # the literal runs between wildcards, variables filled in
        for part in self.parts:
            if part == _STAR:
                literals.append("")
            elif isinstance(part, tuple):
                found = value(part)
                if not found:
                    return False
                literals[-1] += found
            else:
                literals[-1] += part
        return _glob(literals, client_id)


def _glob(literals: list[str], text: str) -> bool:
    """Whether ``text`` is ``literals`` joined by runs of any characters (leftmost fit)."""
    first, *middle_last = literals
    if not middle_last:
        return text == first
    *middle, last = middle_last
    if not text.startswith(first) or len(text) < len(first) + len(last):
        return False
    position, end = len(first), len(text) - len(last)
    for literal in middle:
        found = text.find(literal, position, end)
        if found < 0:
            return False
        position = found + len(literal)
    return text.endswith(last)


def parse_client_id(text: str) -> ClientIdPattern:
    """The pattern written as ``text``; ValueError with the reason when it is not one."""
    if not text or len(text) > _MAX_LENGTH or not text.isprintable():
        raise ValueError(f"a client-id pattern is 1-{_MAX_LENGTH} printable characters")
    template = parse_template(text)
    pieces = (text,) if isinstance(template, str) else template.parts
    parts: list[str | Variable] = []
    for piece in pieces:
        if isinstance(piece, tuple):
            parts.append(piece)
            continue
        for index, literal in enumerate(piece.split(_STAR)):
            if index:
                parts.append(_STAR)
            if literal:
                parts.append(literal)
    if all(part == _STAR for part in parts):
        raise ValueError(f"{text!r} admits every client id: bind it to the identity")
    return ClientIdPattern(text, tuple(parts))


def check_client_id(text: str) -> str:
    """Validator for the policy model."""
    parse_client_id(text)
    return text
