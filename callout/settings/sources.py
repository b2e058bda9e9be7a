"""Where each setting comes from, and errors that say so.

The YAML file, ``CALLOUT_*`` environment variables (merged key by key) and explicit arguments
(each replaces a whole section), put in order by `callout.settings.loader`. Every value
remembers its origin (``file:line``, the variable's name, or ``argument``) so that a
validation error names it, with the key path, the problem, and the closest valid key when a
key is unknown. No message carries a value read from a file.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ValidationError

from callout.errors import ConfigError

ENV_PREFIX = "CALLOUT_"
ENV_DELIMITER = "__"

KeyPath = tuple[str | int, ...]


@dataclass
class Sources:
    """The merged raw data and the origin of every key path in it."""

    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[KeyPath, str] = field(default_factory=dict)

    def origin(self, path: KeyPath) -> str | None:
        """The origin of ``path`` or of its nearest ancestor that has one."""
        for end in range(len(path), 0, -1):
            found = self.origins.get(path[:end])
            if found is not None:
                return found
        return None


def read_yaml(path: Path) -> Sources:
    """The YAML document at ``path`` with the line of every key; else `ConfigError`."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (invalid byte at offset {error.start}); save the "
            "settings file as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}") from None
    if data is None:
        return Sources()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the top level must be a mapping of settings")
    origins: dict[KeyPath, str] = {}
    for key_path, line in _key_lines(node, ()):
        origins[key_path] = f"{path}:{line}"
    return Sources(data, origins)


def _key_lines(node: yaml.Node | None, prefix: KeyPath) -> Iterator[tuple[KeyPath, int]]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            yield path, key.start_mark.line + 1
            yield from _key_lines(value, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, index)
            yield path, item.start_mark.line + 1
            yield from _key_lines(item, path)


def read_environment(model: type[BaseModel], environ: Mapping[str, str]) -> Sources:
    """``CALLOUT_SECTION__KEY=value`` variables as nested data; unknown names are errors.

    Lists take JSON (``["a", "b"]``) or commas (``a,b``); sections and mappings take JSON.
    """
    sources = Sources()
    problems: list[str] = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].split(ENV_DELIMITER)
        try:
            path, annotation = _resolve(model, parts)
            value = _env_value(environ[name], annotation)
        except ValueError as error:
            problems.append(f"{name}: {error}")
            continue
        _put(sources.data, path, value)
        sources.origins[path] = name
    if problems:
        raise ConfigError("environment: invalid configuration\n  " + "\n  ".join(problems))
    return sources


def _resolve(model: type[BaseModel], parts: list[str]) -> tuple[KeyPath, Any]:
    """The key path an environment variable names, and the annotation of its value."""
    path: list[str] = []
    annotation: Any = model
    for part in parts:
        if not part:
            raise ValueError("empty name segment (a doubled or trailing __)")
        fields = _model_fields(annotation)
        if fields is not None:
            key = part.lower()
            if key not in fields:
                raise ValueError(_unknown(key, fields, (*path, key), env=True))
            annotation = fields[key]
        else:
            mapping = _mapping_value(annotation)
            if mapping is None:
                where = ".".join(path) or "settings"
                raise ValueError(f"{where} has no keys below it to set")
            key, annotation = part, mapping
        path.append(key)
    return tuple(path), annotation


def env_name(path: KeyPath) -> str:
    return ENV_PREFIX + ENV_DELIMITER.join(str(part).upper() for part in path)


def _unknown(key: str, fields: Mapping[str, Any], path: KeyPath, *, env: bool) -> str:
    """What is wrong with an unknown key, and the closest valid one."""
    where = ".".join(str(part) for part in path)
    message = f"unknown setting {where}"
    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
    if close:
        suggestion = (*path[:-1], close[0])
        shown = env_name(suggestion) if env else ".".join(str(p) for p in suggestion)
        message += f" (did you mean {shown}?)"
    else:
        message += f"; valid keys here: {', '.join(sorted(fields))}"
    return message


def _env_value(text: str, annotation: Any) -> Any:
    kind = _kind(annotation)
    if kind == "scalar":
        return text
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON (column {error.colno}): {error.msg}") from None
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    raise ValueError("this setting is a section: give it as JSON ({...}) or set its keys")


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``; ``Annotated[X, ...]`` → ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _kind(annotation: Any) -> str:
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return "list"
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return "section"
    if origin in (Union, types.UnionType):
        return "section"  # a discriminated union of sections
    return "scalar"


def _model_fields(annotation: Any) -> dict[str, Any] | None:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: info.annotation for name, info in annotation.model_fields.items()}
    return None


def _mapping_value(annotation: Any) -> Any:
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) is dict:
        return typing.get_args(annotation)[1]
    return None


def _put(data: dict[str, Any], path: KeyPath, value: Any) -> None:
    for part in path[:-1]:
        child = data.setdefault(str(part), {})
        if not isinstance(child, dict):
            child = data[str(part)] = {}
        data = child
    data[str(path[-1])] = value


def merge(base: Sources, over: Sources) -> Sources:
    """``over`` on top of ``base``, key by key (mappings merge, anything else replaces)."""
    data = _deep_merge(base.data, over.data)
    origins = {
        path: origin
        for path, origin in base.origins.items()
        if not any(path[: len(o)] == o for o in over.origins if not _is_section(over, o))
    }
    origins.update(over.origins)
    return Sources(data, origins)


def _is_section(sources: Sources, path: KeyPath) -> bool:
    value: Any = sources.data
    for part in path:
        if not isinstance(value, dict) or str(part) not in value:
            return False
        value = value[str(part)]
    return isinstance(value, dict)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def explicit(values: Mapping[str, Any]) -> Sources:
    """Arguments given in code: each named section replaces that section wholesale."""
    return Sources(dict(values), {(key,): f"argument {key}=" for key in values})


def over_explicit(base: Sources, arguments: Sources) -> Sources:
    """``arguments`` replace whole top-level sections of ``base``."""
    data = {**base.data, **arguments.data}
    origins = {p: o for p, o in base.origins.items() if str(p[0]) not in arguments.data}
    origins.update(arguments.origins)
    return Sources(data, origins)


def format_errors(
    error: ValidationError, sources: Sources, model: type[BaseModel], default: str
) -> str:
    """One line per problem: origin, key path, what is wrong (and the closest valid key).
    A problem with no origin (a required key nobody set) is placed at ``default``."""
    lines = ["invalid configuration"]
    for item in error.errors():
        loc: KeyPath = tuple(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if not loc:  # whole-tree checks name their keys at the start of each line
            for line in message.splitlines():
                key = tuple(line.split(":", 1)[0].split("."))
                lines.append(f"  {sources.origin(key) or default}: {line}")
            continue
        where = _data_path(loc, sources.data)
        path = ".".join(str(part) for part in where)
        origin = sources.origin(where) or default
        if item["type"] == "extra_forbidden":
            fields = _fields_at(model, loc[:-1])
            env = origin.startswith(ENV_PREFIX)
            if fields:
                lines.append(f"  {origin}: {_unknown(str(loc[-1]), fields, where, env=env)}")
                continue
        lines.append(f"  {origin}: {path}: {message}")
    return "\n".join(lines)


def _data_path(loc: KeyPath, data: Any) -> KeyPath:
    """``loc`` as a path into the data: without the tags pydantic adds for tagged unions
    (``backends.0.ldap.urls`` is ``backends.0.urls`` in the file)."""
    out: list[str | int] = []
    for part in loc:
        if isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        elif isinstance(data, dict) and str(part) in data:
            data = data[str(part)]
        elif isinstance(data, dict) and out and isinstance(out[-1], int):
            continue  # the tag of a tagged union member
        else:
            data = None
        out.append(part)
    return tuple(out)


def _fields_at(model: type[BaseModel], loc: KeyPath) -> dict[str, Any] | None:
    """The fields of the section at ``loc`` (through lists, mappings, tagged unions)."""
    annotation: Any = model
    for part in loc:
        fields = _model_fields(annotation)
        if fields is not None:
            if part not in fields:
                return None
            annotation = fields[str(part)]
            continue
        annotation = _unwrap(annotation)
        origin = typing.get_origin(annotation)
        if origin in (list, tuple) and isinstance(part, int):
            annotation = typing.get_args(annotation)[0]
        elif origin is dict:
            annotation = typing.get_args(annotation)[1]
        elif origin in (Union, types.UnionType):  # tagged: the loc names the tag
            annotation = _tagged_member(annotation, str(part))
        else:
            return None
    return _model_fields(annotation)


def _tagged_member(union: Any, tag: str) -> Any:
    for member in typing.get_args(union):
        fields = _model_fields(member)
        if fields is not None and "type" in fields and tag in typing.get_args(fields["type"]):
            return member
    return None
