"""Where each setting comes from.

The YAML file, ``CALLOUT_*`` environment variables (merged key by key) and explicit arguments
(each replaces a whole section), put in order by `callout.settings.loader`. Every value
remembers its origin (``file:line``, the variable's name, or ``argument``) so that an
error names it (`callout.settings.problems`). No message carries a value read from a file.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from callout.errors import ConfigError
from callout.settings.annotations import KeyPath, mapping_value, model_fields, value_kind

ENV_PREFIX = "CALLOUT_"
ENV_DELIMITER = "__"


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
        fields = model_fields(annotation)
        if fields is not None:
            key = part.lower()
            if key not in fields:
                raise ValueError(unknown_key(key, fields, (*path, key), env=True))
            annotation = fields[key]
        else:
            mapping = mapping_value(annotation)
            if mapping is None:
                where = ".".join(path) or "settings"
                raise ValueError(f"{where} has no keys below it to set")
            key, annotation = part, mapping
        path.append(key)
    return tuple(path), annotation


def env_name(path: KeyPath) -> str:
    return ENV_PREFIX + ENV_DELIMITER.join(str(part).upper() for part in path)


def unknown_key(key: str, fields: Mapping[str, Any], path: KeyPath, *, env: bool) -> str:
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
    kind = value_kind(annotation)
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
