"""Settings forms generated from plugins' pydantic JSON schemas: a new plugin's options appear without UI code."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Shown first, outside the "more settings" fold, when a generator has them.
KEY_FIELDS = ("steps", "guidance_scale", "strength")


@dataclass(frozen=True)
class FieldSpec:
    """One editable config field: number, integer, bool, text or a choice."""

    name: str
    kind: str  # "integer" | "number" | "boolean" | "string" | "enum"
    label: str
    description: str
    default: Any
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False


def _deref(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        return {**schema.get("$defs", {}).get(ref.split("/")[-1], {}), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def form_fields(schema: dict[str, Any]) -> list[FieldSpec]:
    """Editable fields of a config schema; lists, mappings and unions of several types are left to the recipe."""
    out = []
    for name, node in (schema.get("properties") or {}).items():
        node = _deref(schema, node)
        optional = False
        variants = node.get("anyOf")
        if variants:
            real = [_deref(schema, v) for v in variants if v.get("type") != "null"]
            if len(real) != 1:
                continue
            optional = len(real) < len(variants)
            node = {**real[0], **{k: v for k, v in node.items() if k != "anyOf"}}
        kind = node.get("type")
        if "enum" in node:
            kind = "enum"
        elif "const" in node:
            continue
        if kind not in ("integer", "number", "boolean", "string", "enum"):
            continue
        out.append(FieldSpec(
            name=name, kind=kind, label=node.get("title") or name, description=node.get("description", ""),
            default=node.get("default"), choices=tuple(node.get("enum", ())),
            minimum=node.get("minimum", node.get("exclusiveMinimum")),
            maximum=node.get("maximum", node.get("exclusiveMaximum")), optional=optional))
    key = {k: i for i, k in enumerate(KEY_FIELDS)}
    return sorted(out, key=lambda f: key.get(f.name, len(key)))


def coerce(field: FieldSpec, value: Any) -> Any:
    """A form value back into the config's type; blank optional fields become None, blank others are skipped."""
    if value is None or (isinstance(value, str) and value == "" and field.kind != "string"):
        return None
    if field.kind in ("integer", "number"):
        number = float(value)
        if not math.isfinite(number):  # "inf" / "nan" typed into a number box
            raise ValueError(f"{field.name}: {value!r} is not a finite number")
        return int(round(number)) if field.kind == "integer" else number
    if field.kind == "boolean":
        return bool(value)
    if field.kind == "string":
        return None if value == "" and field.optional else str(value)
    return value


def make_component(gr, field: FieldSpec, value: Any):
    """The Gradio input for one field."""
    info = field.description[:200] or None
    if field.kind == "boolean":
        return gr.Checkbox(value=bool(value), label=field.name, info=info)
    if field.kind == "enum":
        return gr.Dropdown(choices=list(field.choices), value=value, label=field.name, info=info)
    if field.kind in ("integer", "number"):
        return gr.Number(value=value, label=field.name, info=info, precision=0 if field.kind == "integer" else None,
                         minimum=field.minimum, maximum=field.maximum)
    return gr.Textbox(value="" if value is None else str(value), label=field.name, info=info, max_lines=1)
