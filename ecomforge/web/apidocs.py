"""/docs without a CDN: the API's routes as one plain page, from the same schema as /openapi.json.

FastAPI's Swagger UI and ReDoc pages load their scripts from cdn.jsdelivr.net, so on a server without
internet (which this one is meant to be able to be) they are blank. This page is server-rendered HTML
with no script and no outside request; tools that want the full schema read /openapi.json.
"""
from __future__ import annotations

import html
from typing import Any

DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
METHODS = ("get", "post", "put", "patch", "delete")
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:980px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:15px;margin:22px 0 4px;font-family:ui-monospace,monospace}
.m{display:inline-block;min-width:44px;padding:1px 6px;border-radius:4px;color:#fff;font-size:12px;text-align:center}
.get{background:#2563eb}.post{background:#15803d}.put,.patch{background:#b45309}.delete{background:#b91c1c}
table{border-collapse:collapse;margin:4px 0 8px}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left;
vertical-align:top}th{background:#f3f4f6}p{margin:4px 0}code{font-family:ui-monospace,monospace}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _text(value: Any) -> str:
    """A docstring's text, escaped, with its ``code`` (reST's double backticks) shown as code."""
    parts = _e(value).split("``")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)) if len(parts) % 2 else _e(value)


def _type(schema: dict[str, Any]) -> str:
    """A parameter's type in a few characters: ``string``, ``array of string (binary)``, ``string | file``."""
    if "oneOf" in schema or "anyOf" in schema:
        return " | ".join(_type(s) for s in schema.get("oneOf") or schema.get("anyOf") or [] if isinstance(s, dict))
    kind = str(schema.get("type", "value"))
    if kind == "array":
        return f"array of {_type(schema.get('items') or {})}"
    return f"{kind} ({schema['format']})" if schema.get("format") else kind


def _fields(rows: list[tuple[str, str, bool, str]]) -> str:
    if not rows:
        return ""
    body = "".join(f"<tr><td><code>{_e(n)}</code></td><td>{_e(where)}</td><td>{'yes' if req else ''}</td>"
                   f"<td>{_e(desc)}</td></tr>" for n, where, req, desc in rows)
    return f"<table><tr><th>field</th><th>where, type</th><th>required</th><th>what</th></tr>{body}</table>"


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    rows = [(str(p.get("name")), f"{p.get('in')}, {_type(p.get('schema') or {})}", bool(p.get("required")),
             str(p.get("description") or "")) for p in op.get("parameters") or [] if isinstance(p, dict)]
    content = ((op.get("requestBody") or {}).get("content") or {})
    for media, spec in content.items():
        schema = (spec or {}).get("schema") or {}
        required = set(schema.get("required") or [])
        rows += [(name, f"{media}, {_type(prop)}", name in required, str(prop.get("description") or ""))
                 for name, prop in (schema.get("properties") or {}).items() if isinstance(prop, dict)]
    return (f"<h2><span class='m {_e(method)}'>{_e(method.upper())}</span> {_e(path)}</h2>"
            f"<p><b>{_e(op.get('summary') or '')}</b></p><p>{_text(op.get('description') or '')}</p>" + _fields(rows))


def docs_page(schema: dict[str, Any]) -> str:
    """The whole page: title, how errors look, then every route with its fields."""
    info = schema.get("info") or {}
    ops = [_operation(path, method, op) for path, item in (schema.get("paths") or {}).items()
           for method, op in item.items() if method in METHODS and isinstance(op, dict)]
    return (f"<!doctype html><meta charset='utf-8'><title>{_e(info.get('title', 'API'))} API</title>"
            f"<style>{_CSS}</style><h1>{_e(info.get('title', 'API'))} {_e(info.get('version', ''))} — HTTP API</h1>"
            f"<p>{_e(info.get('description') or '')}</p>"
            "<p>The full schema, for tools and client generators: <a href='/openapi.json'>/openapi.json</a>. "
            "Errors are <code>{\"error\": \"&lt;one line&gt;\", \"status\": N}</code>. More in docs/web.md.</p>"
            + "".join(ops))
