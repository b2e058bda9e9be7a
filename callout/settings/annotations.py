"""Walking the settings models by their annotations: the fields of a section, through lists,
mappings and tagged unions, and what kind of value a key takes."""

from __future__ import annotations

import types
import typing
from typing import Any, Union

from pydantic import BaseModel

KeyPath = tuple[str | int, ...]


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


def value_kind(annotation: Any) -> str:
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return "list"
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return "section"
    if origin in (Union, types.UnionType):
        return "section"  # a discriminated union of sections
    return "scalar"


def model_fields(annotation: Any) -> dict[str, Any] | None:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: info.annotation for name, info in annotation.model_fields.items()}
    return None


def mapping_value(annotation: Any) -> Any:
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) is dict:
        return typing.get_args(annotation)[1]
    return None


def fields_at(model: type[BaseModel], loc: KeyPath) -> dict[str, Any] | None:
    """The fields of the section at ``loc`` (through lists, mappings, tagged unions)."""
    annotation: Any = model
    for part in loc:
        fields = model_fields(annotation)
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
    return model_fields(annotation)


def _tagged_member(union: Any, tag: str) -> Any:
    for member in typing.get_args(union):
        fields = model_fields(member)
        if fields is not None and "type" in fields and tag in typing.get_args(fields["type"]):
            return member
    return None
