"""Typed field kinds for path- and URL-valued stage settings, and a walker that finds them in any config.

A stage declares a setting that names a file, a folder, a model or a URL with one of the ``Annotated``
kinds below instead of a bare ``str``. Nothing changes for validation; what it buys is that code which
must not trust a value (the web server) can find every such setting of every plugin — nested models,
lists, dicts and optional values included — without knowing the plugins.
"""
from __future__ import annotations

import re
import types
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel


@dataclass(frozen=True)
class PathField:
    """Marks a ``str`` setting as naming something outside the recipe: a file, a folder, a model or a URL."""

    kind: str  # "image" (a picture a stage reads), "file" (a file or folder it reads), "model", "output"
    urls: bool = False  # the stage also accepts http(s) URLs here
    pattern: bool = False  # may hold {name} / {stem} / {product} placeholders, filled per reference
    literal: str | None = None  # regex of values that are not paths at all ('#rrggbb' for a background)

    def is_literal(self, value: str) -> bool:
        """True when ``value`` is one of the field's non-path forms (a colour spec, say)."""
        return bool(self.literal and re.fullmatch(self.literal, value.strip()))


# An image file a stage reads (a background photo, an uploaded mask).
ImageSource = Annotated[str, PathField("image")]
# An image path pattern: {name}, {stem}, {product} are filled per reference.
ImagePattern = Annotated[str, PathField("image", pattern=True)]
# A local file or folder a stage reads.
LocalPath = Annotated[str, PathField("file")]
# A model: a hub id, or a local folder / checkpoint file.
ModelRef = Annotated[str, PathField("model")]
# A folder a stage writes into.
OutputPath = Annotated[str, PathField("output")]


@dataclass(frozen=True)
class FoundPath:
    """One path-valued setting found in a config: where it is, its kind, its value."""

    loc: str
    field: PathField
    value: str
    default: bool = False  # the plugin's own default, not something the recipe set


def _marker(annotation: Any) -> PathField | None:
    """The PathField of an annotation that accepts a plain string (through Optional/unions too)."""
    if get_origin(annotation) is Annotated:
        base, *meta = get_args(annotation)
        found = next((m for m in meta if isinstance(m, PathField)), None)
        return found or _marker(base)
    if get_origin(annotation) in (Union, types.UnionType):
        return next((m for a in get_args(annotation) if (m := _marker(a)) is not None), None)
    return None


def _members(annotation: Any) -> list[Any]:
    """An annotation with Annotated and unions unwrapped into its alternatives."""
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _members(a)]
    return [annotation]


def _field_type(model: type[BaseModel], name: str) -> Any:
    info = model.model_fields[name]
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def walk(annotation: Any, value: Any, loc: str = "") -> Iterator[FoundPath]:
    """Every path-valued string inside ``value`` (a validated config, or plain JSON-like data) of type ``annotation``."""
    if isinstance(value, str):
        marker = _marker(annotation)
        if marker is not None:
            yield FoundPath(loc, marker, value)
        return
    if isinstance(value, BaseModel):
        yield from walk_config(value, loc)
        return
    for member in _members(annotation):
        found = _walk_container(member, value, loc)
        if found is not None:
            yield from found
            return


def _walk_container(member: Any, value: Any, loc: str) -> Iterator[FoundPath] | None:
    """The walk into a model given as a dict, a dict or a list/tuple, if ``member`` is that kind; else None."""
    origin, args = get_origin(member), get_args(member)
    if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(value, dict):
        return (f for key, item in value.items() if key in member.model_fields
                for f in walk(_field_type(member, key), item, _join(loc, key)))
    if isinstance(value, dict) and origin is dict and len(args) == 2:
        return (f for key, item in value.items() for f in walk(args[1], item, _join(loc, str(key))))
    if isinstance(value, (list, tuple)) and origin in (list, tuple, set, frozenset) and args:
        fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
        return (f for i, item in enumerate(value)
                for f in walk((args[i] if i < len(args) else None) if fixed else args[0], item, _join(loc, str(i))))
    return None


def walk_config(config: BaseModel, loc: str = "") -> Iterator[FoundPath]:
    """Every path-valued setting of a validated config; those left at the plugin's default are marked ``default``."""
    model = type(config)
    for name, info in model.model_fields.items():
        value = getattr(config, name)
        default = name not in config.model_fields_set or value == info.get_default(call_default_factory=True)
        for found in walk(_field_type(model, name), value, _join(loc, name)):
            yield replace(found, default=True) if default else found


def path_fields(model: type[BaseModel], loc: str = "") -> Iterator[tuple[str, PathField]]:
    """The declared path-valued fields of a Config class (nested models and containers followed)."""
    for name in model.model_fields:
        yield from _declared(_field_type(model, name), _join(loc, name), {model})


def _declared(annotation: Any, loc: str, seen: set[type]) -> Iterator[tuple[str, PathField]]:
    marker = _marker(annotation)
    if marker is not None:
        yield loc, marker
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel) and member not in seen:
            for name in member.model_fields:
                yield from _declared(_field_type(member, name), _join(loc, name), seen | {member})
        origin, args = get_origin(member), get_args(member)
        if origin is dict and len(args) == 2:
            yield from _declared(args[1], f"{loc}{{}}", seen)
        elif origin in (list, tuple, set, frozenset):
            for arg in dict.fromkeys(a for a in args if a is not Ellipsis):
                yield from _declared(arg, f"{loc}[]", seen)


def _join(loc: str, part: str) -> str:
    return f"{loc}.{part}" if loc else part


# ``Field(..., json_schema_extra=WORK)``: the setting is an amount of work (a working resolution, a step count);
# a catalogue row may lower it below the recipe's value, never raise it.
WORK = {"work": True}


def work_fields(model: type[BaseModel], loc: str = "") -> Iterator[str]:
    """The settings of a Config class declared as amounts of work (``json_schema_extra={"work": True}``), nested models
    followed."""
    yield from _work(model, loc, {model})


def _work(model: type[BaseModel], loc: str, seen: set[type]) -> Iterator[str]:
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("work") is True:
            yield _join(loc, name)
        for member in _members(info.annotation):
            if isinstance(member, type) and issubclass(member, BaseModel) and member not in seen:
                yield from _work(member, _join(loc, name), seen | {member})
