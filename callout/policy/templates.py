"""Subject syntax and subject templates: checked at load time, rendered per login.

A template is a subject with ``{{variable}}`` holes. The variables are a closed set
(`VARIABLES`); an unknown one is a load error. A value that could change the meaning of a
subject (empty, or holding ``.``, ``*``, ``>``, whitespace or a control character) makes the
whole login fail: a user named ``a.>`` must never be able to widen a grant. Nor may a value
start with ``_INBOX``: a user named after another identity's private inbox prefix must not
reach its replies through ``{{user.name}}.>``. (``{{user.inbox}}`` itself is derived, not given.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

Variable = tuple[str, ...]

VARIABLES = (
    "user.name",
    "user.account",
    "user.inbox",  # the identity's private inbox prefix (callout.policy.intents)
    "user.attr.NAME",
    "client.name",
    "server.name",
    "server.cluster",
    "server.tag.NAME",
)
_FIXED: frozenset[Variable] = frozenset(
    tuple(name.split(".")) for name in VARIABLES if "NAME" not in name
)
_NAMED = {("user", "attr"), ("server", "tag")}
_NAMED_LEN = 3  # scope.kind.NAME
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_HOLE = re.compile(r"\{\{(.*?)\}\}")
_UNSAFE = frozenset(" .*>")
_INBOXES = "_INBOX"  # reply namespaces (shared and private): no value may name one


def parse_variable(text: str) -> Variable:
    """The variable named by the inside of ``{{ ... }}``; ValueError if there is none."""
    parts = tuple(text.strip().split("."))
    if parts in _FIXED:
        return parts
    if (
        len(parts) == len(("scope", "kind", "name"))
        and parts[:2] in _NAMED
        and _NAME.match(parts[2])
    ):
        # nats-server lower-cases server tags, so tag names compare lower-cased
        return (*parts[:2], parts[2].lower()) if parts[1] == "tag" else parts
    known = ", ".join("{{" + name + "}}" for name in VARIABLES)
    raise ValueError(f"unknown template variable {{{{{text.strip()}}}}}; known: {known}")


@dataclass(frozen=True, slots=True)
class Template:
    """A subject with holes; ``parts`` alternate literal text and variables."""

    text: str
    parts: tuple[str | Variable, ...]

    @property
    def variables(self) -> tuple[Variable, ...]:
        return tuple(part for part in self.parts if isinstance(part, tuple))

    def render(self, value: Callable[[Variable], str]) -> str:
        """The subject with every hole filled; callers check values with `is_safe` first."""
        return "".join(part if isinstance(part, str) else value(part) for part in self.parts)


def parse_template(text: str) -> Template | str:
    """A `Template` when ``text`` has holes, else ``text`` itself; ValueError if malformed."""
    parts: list[str | Variable] = []
    position = 0
    for match in _HOLE.finditer(text):
        parts.append(text[position : match.start()])
        parts.append(parse_variable(match.group(1)))
        position = match.end()
    parts.append(text[position:])
    if any(isinstance(part, str) and ("{{" in part or "}}" in part) for part in parts):
        raise ValueError("unbalanced template braces; write {{user.name}}")
    if position == 0:
        return text
    return Template(text, tuple(part for part in parts if part != ""))


def is_safe(value: str) -> bool:
    """Whether ``value`` can stand inside one subject token without changing its meaning."""
    return (
        bool(value)
        and value.isprintable()
        and not _UNSAFE.intersection(value)
        and not value.startswith(_INBOXES)
    )


def _placeholder(text: str) -> str:
    return _HOLE.sub("X", text)


def check_subject(text: str, *, queue_allowed: bool) -> str:
    """Validate a permission entry (templates allowed); ValueError with the reason."""
    parse_template(text)
    plain = _placeholder(text)
    if queue_allowed and plain.count(" ") == 1:
        subject, queue = plain.split(" ")
        problem = _token_problem(subject, "subject") or _token_problem(queue, "queue group")
    elif any(char.isspace() for char in plain):
        problem = (
            "a subscribe entry takes one space, before its queue group"
            if queue_allowed
            else "publish subjects cannot contain whitespace"
        )
    else:
        problem = _token_problem(plain, "subject")
    if problem:
        raise ValueError(f"invalid subject {text!r}: {problem}")
    return text


def _token_problem(subject: str, what: str) -> str | None:
    if not subject:
        return f"empty {what}"
    if not subject.isprintable() or any(char.isspace() for char in subject):
        return f"{what} contains whitespace or control characters"
    pieces = subject.split(".")
    for index, piece in enumerate(pieces):
        if not piece:
            return f"{what} has an empty token (look for '..' or a '.' at either end)"
        if piece == ">" and index != len(pieces) - 1:
            return f"'>' must be the last token of the {what}"
        if piece not in ("*", ">") and ("*" in piece or ">" in piece):
            return f"wildcards must be whole tokens in the {what}"
    return None
