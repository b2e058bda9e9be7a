"""Reading one policy file: YAML 1.2-style scalars, no duplicate keys, a line for every path.

PyYAML speaks YAML 1.1, where ``on`` is a boolean and ``17:00:00`` is the integer 61200. Policy
files hold subjects and clock times, so this module resolves plain scalars the YAML 1.2 core
way (only ``true``/``false``, decimal/octal/hex integers, floats and ``null``) and keeps every
other scalar a string. It composes the node tree first so that each value keeps its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from callout.errors import PolicyIssue

Path = tuple[str | int, ...]

_CORE_RESOLVERS: list[tuple[str, str, str]] = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (
        "tag:yaml.org,2002:int",
        r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
        "-+0123456789",
    ),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL)$", "~nN"),
]


class _CoreResolver(yaml.resolver.Resolver):
    """A resolver with the YAML 1.2 core schema's implicit tags and nothing else."""

    # PyYAML keeps resolvers in this class attribute; a fresh dict keeps ours apart
    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}  # noqa: RUF012


for _tag, _pattern, _first in _CORE_RESOLVERS:
    _CoreResolver.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^$"), [""]
)  # the empty scalar has no first character


class _Loader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    yaml.constructor.SafeConstructor,
    _CoreResolver,
):
    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _CoreResolver.__init__(self)


@dataclass(frozen=True, slots=True)
class Document:
    """One file's data, and the 1-based line of every mapping key and sequence item."""

    file: str
    data: Any
    lines: dict[Path, int]

    def line(self, path: Path) -> int | None:
        """The line of ``path``, or of its longest prefix that exists in the file."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None

    def issue(self, path: Path, message: str) -> PolicyIssue:
        return PolicyIssue(self.file, self.line(path), dotted(path), message)


def dotted(path: Path) -> str:
    """``users.alice.publish.allow[0]`` for a path tuple."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def parse(file: str, text: str) -> tuple[Document | None, list[PolicyIssue]]:
    """Parse ``text``: a document (None if it cannot be read at all) and the problems found."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader rejects control characters right away
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = ", ".join(part for part in (exc.context, exc.problem) if part) or "?"
        return None, [PolicyIssue(file, line, "", f"invalid YAML: {problem}")]
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else 0
        message = f"invalid YAML: character #x{code:04x} is not allowed"
        return None, [PolicyIssue(file, line, "", message)]
    except yaml.YAMLError as exc:
        return None, [PolicyIssue(file, None, "", f"invalid YAML: {type(exc).__name__}")]
    except RecursionError:
        return None, [PolicyIssue(file, None, "", "invalid YAML: nested too deeply")]
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        return None, [PolicyIssue(file, 1, "", "the file is empty; expected `version: 1`")]
    builder = _Builder(file, loader)
    builder.lines[()] = node.start_mark.line + 1
    try:
        data = builder.build(node, ())
    except _TooLargeError as exc:
        return None, [PolicyIssue(file, exc.line, "", f"invalid YAML: {exc}")]
    # Duplicate keys and unreadable values are reported, and the rest of the document (the
    # first definition of a duplicate) is still returned: its other problems get found too.
    return Document(file, data, builder.lines), builder.issues


_MAX_NODES = 200_000  # aliases can make a small file expand exponentially
_MAX_DEPTH = 64


class _TooLargeError(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _Builder:
    """Turns composed nodes into Python values, recording lines and duplicate keys."""

    def __init__(self, file: str, loader: _Loader) -> None:
        self.file = file
        self.loader = loader
        self.lines: dict[Path, int] = {}
        self.issues: list[PolicyIssue] = []
        self._budget = _MAX_NODES

    def build(self, node: yaml.Node, path: Path, depth: int = 0) -> Any:
        self._budget -= 1
        line = node.start_mark.line + 1
        if self._budget < 0:
            raise _TooLargeError("too many nodes (alias expansion?)", line)
        if depth > _MAX_DEPTH:
            raise _TooLargeError("nested too deeply (recursive alias?)", line)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = item.start_mark.line + 1
                items.append(self.build(item, (*path, index), depth + 1))
            return items
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if isinstance(key, bool) or not isinstance(key, str | int):
                self._issue(key_line, path, "mapping keys must be plain strings")
                continue
            child = (*path, str(key))
            if str(key) in out:
                first = self.lines[child]
                self._issue(key_line, child, f"duplicate key (first defined on line {first})")
                continue
            self.lines[child] = key_line
            out[str(key)] = self.build(value_node, child, depth + 1)
        return out

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        value = node.value
        try:
            if node.tag == "tag:yaml.org,2002:bool" and isinstance(value, str):
                return value.lower() == "true"
            if node.tag == "tag:yaml.org,2002:int" and isinstance(value, str):
                return int(value, 0) if value[:2] in ("0o", "0x") else int(value, 10)
            if node.tag == "tag:yaml.org,2002:null":
                return None
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            problem = getattr(exc, "problem", None) or "cannot be read"
            self._issue(node.start_mark.line + 1, path, f"invalid value: {problem}")
            return None

    def _issue(self, line: int, path: Path, message: str) -> None:
        self.issues.append(PolicyIssue(self.file, line, dotted(path), message))
