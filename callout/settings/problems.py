"""Settings errors that name their source: one line per problem with the origin
(``file:line``, the variable, or the argument), the key path, what is wrong, and the closest
valid key when a key is unknown."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from callout.settings.annotations import KeyPath, fields_at
from callout.settings.sources import ENV_PREFIX, Sources, unknown_key


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
            fields = fields_at(model, loc[:-1])
            env = origin.startswith(ENV_PREFIX)
            if fields:
                lines.append(f"  {origin}: {unknown_key(str(loc[-1]), fields, where, env=env)}")
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
