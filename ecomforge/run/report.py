"""report.html: a contact sheet of references, masks and every candidate with its scores."""
from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..imaging.io import atomic_write_bytes
from .context import RunContext

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:20px}h2{font-size:17px;margin-top:32px;border-bottom:1px solid #ddd}
.row{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;background:#fff;border:3px solid #ddd;border-radius:6px;padding:6px;width:220px}
figure.kept{border-color:#2e9b4f}figure.failed{border-color:#c0392b;opacity:.7}
figure img{width:100%;height:auto;display:block;background:#eee}
figcaption{font-size:12px;color:#444;margin-top:4px;word-break:break-word}
.tag{display:inline-block;padding:0 6px;border-radius:3px;font-size:11px;color:#fff;background:#888}
.kept .tag{background:#2e9b4f}.failed .tag{background:#c0392b}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}td.reason{text-align:left}
h2.failed{color:#c0392b}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _params_line(params: dict[str, Any]) -> str:
    shown = [f"{k}={v}" for k, v in params.items() if not isinstance(v, (dict, list)) and v is not None]
    return ", ".join(shown[:8])


def _source_name(path: Path) -> str:
    """The photo a stored reference came from (its PNG ``source`` text): the name a user gave it, not ``00``."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            source = str(getattr(im, "text", {}).get("source") or "")
    except (OSError, ValueError, SyntaxError):
        return ""  # a missing or unreadable stored reference: the report still lists its candidates
    return source.replace("\\", "/").rsplit("/", 1)[-1][:80]


def render_report(records: list[dict[str, Any]], *, title: str, root: Path,
                  summary: dict[str, Any] | None = None) -> str:
    """The HTML of a contact sheet for the given manifest records."""
    by_product: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_product[rec["product"]].append(rec)
    out = [f"<!doctype html><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style>",
           f"<h1>{_e(title)}</h1>"]
    if summary:
        kept = sum(bool(r["kept"]) for r in records)
        out.append(f"<p>{len(records)} candidates, {kept} kept, {summary.get('seconds', '?')} s.</p>")
        stages = summary.get("stage_seconds") or {}
        if stages:
            out.append("<table><tr><th>stage</th><th>seconds</th></tr>")
            out += [f"<tr><td>{_e(k)}</td><td>{v:.2f}</td></tr>" for k, v in stages.items()]
            out.append("</table>")
    out += _failed_section((summary or {}).get("failed_products") or [])
    for product, recs in by_product.items():
        out.append(f"<h2>{_e(product)}</h2>")
        prompts = sorted({(r.get("prompt") or "", r.get("negative_prompt") or "") for r in recs})
        for prompt, negative in prompts:  # catalogue templates and overrides are filled in per product
            out.append(f"<p class='prompt'>Prompt: {_e(prompt)}"
                       + (f"<br>Negative prompt: {_e(negative)}" if negative else "") + "</p>")
        out.append("<h3>References and masks</h3><div class='row'>")
        for name in sorted({r["reference"] for r in recs}):
            ref = f"references/{product}/{name}.png"
            overlay = f"masks/{product}/{name}.overlay.png"
            caption = f"{name} ({source})" if (source := _source_name(root / ref)) else name
            out.append(f"<figure><img src='{_e(ref)}' alt='reference {_e(name)}'><figcaption>{_e(caption)}</figcaption></figure>")
            if (root / overlay).exists():
                out.append(f"<figure><img src='{_e(overlay)}' alt='mask {_e(name)}'><figcaption>mask of {_e(name)}</figcaption></figure>")
        out.append("</div><h3>Candidates</h3><div class='row'>")
        ranked = sorted(recs, key=lambda r: (not r["kept"], -(r.get("total") or -1), r["id"]))
        for rec in ranked:
            cls = "kept" if rec["kept"] else ("failed" if rec.get("failed") else "")
            tag = "kept" if rec["kept"] else ("failed" if rec.get("failed") else "dropped")
            scores = " ".join(f"{k} {v:.3f}" for k, v in rec.get("scores", {}).items())
            total = f"total {rec['total']:.3f}" if rec.get("total") is not None else ""
            out.append(
                f"<figure class='{cls}' id='{_e(rec['id'])}'><a href='{_e(rec['image'])}'>"
                f"<img loading='lazy' src='{_e(rec['image'])}' alt='candidate {_e(rec['id'])}'></a>"
                f"<figcaption><span class='tag'>{tag}</span> {_e(total)}<br>{_e(scores)}<br>"
                f"seed {_e(rec['seed'])} · {_e(_params_line(rec.get('params', {})))}<br>"
                f"<i>{_e(rec.get('reason', ''))}</i><br><code>{_e(rec['id'])}</code></figcaption></figure>")
        out.append("</div>")
        timing_keys = sorted({k for r in recs for k in r.get("timings", {})})
        if timing_keys:
            out.append("<h3>Time per candidate (s)</h3><table><tr>" + "".join(f"<th>{_e(k)}</th>" for k in timing_keys) + "</tr><tr>")
            out += [f"<td>{sum(r.get('timings', {}).get(k, 0) for r in recs) / len(recs):.3f}</td>" for k in timing_keys]
            out.append("</tr></table>")
    return "\n".join(out)


def _failed_section(failed: list[dict[str, Any]]) -> list[str]:
    """A table of the products that failed, with the step and one-line reason (also in failed.csv)."""
    if not failed:
        return []
    rows = "".join(f"<tr><td>{_e(f['product'])}</td><td>{_e(f.get('step', ''))}</td><td>{_e(f.get('plugin', ''))}"
                   f"</td><td class='reason'>{_e(f.get('reason', ''))}</td></tr>" for f in failed)
    return [f"<h2 class='failed'>Failed products ({len(failed)})</h2>",
            "<p>Listed in failed.csv; <code>ecomforge run RECIPE --resume RUN_DIR</code> retries them.</p>",
            f"<table><tr><th>product</th><th>step</th><th>plugin</th><th>reason</th></tr>{rows}</table>"]


def write_report(root: Path, records: list[dict[str, Any]], run: RunContext, summary: dict[str, Any]) -> None:
    """Write report.html into the run folder, atomically."""
    text = render_report(records, title=f"ecomforge run {run.run_id}", root=root, summary=summary)
    atomic_write_bytes(root / "report.html", text.encode("utf-8"))
