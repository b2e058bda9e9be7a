"""Reading a verified token's claims by path, and checking an issuer's ``require`` rules.

Pure functions over the decoded claims. Paths are dotted; at each level the longest key that
matches wins, so ``kubernetes.io.namespace`` reads ``{"kubernetes.io": {"namespace": ...}}``
without quoting, and a number indexes a list (``items.0.name``). Values compare as text:
strings as they are, integers in decimal, booleans as ``true``/``false``; objects and nulls
never match. A claim that is a list passes a rule when one of its items does.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from callout.settings.claimrules import ClaimRule, GlobRule, RequireRules

_MAX_DEPTH = 16  # paths come from settings, but stay bounded whatever they say


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` (``realm_access.roles``), or None."""
    return _walk(claims, path.split(".")[:_MAX_DEPTH])


def _walk(value: Any, parts: list[str]) -> Any:
    if not parts:
        return value
    if isinstance(value, Mapping):
        for end in range(len(parts), 0, -1):  # the longest key first
            key = ".".join(parts[:end])
            if key in value:
                return _walk(value[key], parts[end:])
        return None
    if isinstance(value, list) and parts[0].isdigit():
        index = int(parts[0])
        return _walk(value[index], parts[1:]) if index < len(value) else None
    return None


def strings(value: Any) -> list[str]:
    """The non-empty strings of a claim that is a string or a list, or the keys of an object
    (Zitadel's ``urn:zitadel:iam:org:project:roles`` maps each role name to its orgs)."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | Mapping):
        return [item for item in value if isinstance(item, str) and item]
    return []


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    return None


def _texts(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [text for item in items if (text := _text(item)) is not None]


def passes(value: Any, rule: ClaimRule) -> bool:
    """Whether the claim ``value`` satisfies ``rule``."""
    texts = _texts(value)
    if isinstance(rule, GlobRule):
        return any(fnmatchcase(text, p) for text in texts for p in rule.patterns)
    wanted = (rule,) if isinstance(rule, str) else tuple(rule)
    return any(text in wanted for text in texts)


def failed_rule(claims: Mapping[str, Any], rules: RequireRules) -> str | None:
    """The path of the first rule the claims do not satisfy, or None when all hold."""
    for path, rule in rules.items():
        if not passes(claim(claims, path), rule):
            return path
    return None
