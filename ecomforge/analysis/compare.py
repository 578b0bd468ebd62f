"""``ecomforge compare``: two run folders (or two recipes run on the same inputs and seeds), side by side."""
from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..imaging.io import atomic_write_bytes
from ..run.store import read_manifest
from .pairing import Pair, check_records, pair_records, point_of, shared_keys, swept_keys, why_unpaired
from .stats import paired_summary, spearman


def scorer_agreement(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """Spearman correlation between every two scorers over one run's candidates."""
    names = sorted({k for r in records for k in r.get("scores", {})})
    out: dict[str, float | None] = {}
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            both = [r for r in records if x in r["scores"] and y in r["scores"]]
            out[f"{x}~{y}"] = spearman([r["scores"][x] for r in both], [r["scores"][y] for r in both])
    return out


def summarise(pairs: list[Pair]) -> dict[str, Any]:
    """Paired statistics (B against A) of every scorer both sides of every pair have, and of the total."""
    out: dict[str, Any] = {"pairs": len(pairs), "scorers": {}}
    common = set.intersection(*({*ra.get("scores", {})} & {*rb.get("scores", {})} for ra, rb in pairs))
    for name in sorted(common):
        out["scorers"][name] = paired_summary(np.array([ra["scores"][name] for ra, _ in pairs]),
                                              np.array([rb["scores"][name] for _, rb in pairs]))
    totals = [(ra.get("total"), rb.get("total")) for ra, rb in pairs]
    if all(x is not None and y is not None for x, y in totals):
        out["total"] = paired_summary(np.array([x for x, _ in totals]), np.array([y for _, y in totals]))
    return out


def compare_runs(run_a: Path, run_b: Path) -> dict[str, Any]:
    """Statistics of B against A over candidates that show the same image slot, overall and per sweep point."""
    all_a, all_b = read_manifest(run_a), read_manifest(run_b)
    a, b = [r for r in all_a if not r.get("failed")], [r for r in all_b if not r.get("failed")]
    check_records(run_a, a)
    check_records(run_b, b)
    keys = shared_keys(a, b, swept_keys(run_a, a) | swept_keys(run_b, b))
    pairs = pair_records(a, b, keys)
    if not pairs:
        raise UsageError(f"{run_a} and {run_b}: nothing to compare: {why_unpaired(a, b, keys)}")
    result: dict[str, Any] = {"a": str(run_a), "b": str(run_b),
                              "paired_on": ["product (reference sha256s)", "reference", "seed", *keys],
                              "unpaired": {"a": len(a) - len(pairs), "b": len(b) - len(pairs)}}
    result.update(summarise(pairs))
    by_point: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_point[json.dumps(point_of(pair[0], keys), sort_keys=True)].append(pair)
    result["points"] = [{"params": json.loads(p), **summarise(ps)} for p, ps in by_point.items()]
    result["agreement"] = {"a": scorer_agreement(a), "b": scorer_agreement(b)}
    result["kept"] = {"a": sum(r["kept"] for r in a), "b": sum(r["kept"] for r in b)}
    same = [(ra, rb) for ra, rb in pairs if ra["id"] == rb["id"]]
    if same:  # the same candidates under two scorer/filter set-ups
        result["same_candidates"] = {
            "n": len(same),
            "rank_agreement": spearman([ra["total"] for ra, _ in same], [rb["total"] for _, rb in same]),
            "kept_in_a_only": [ra["id"] for ra, rb in same if ra["kept"] and not rb["kept"]],
            "kept_in_b_only": [ra["id"] for ra, rb in same if rb["kept"] and not ra["kept"]],
        }
    result["rows"] = [{"product": ra["product"], "reference": ra.get("reference"), "seed": ra["seed"],
                       "params": point_of(ra, keys), "a": ra["id"], "b": rb["id"], "a_image": ra["image"],
                       "b_image": rb["image"], "a_total": ra.get("total"), "b_total": rb.get("total"),
                       "a_kept": ra["kept"], "b_kept": rb["kept"]} for ra, rb in pairs]
    return result


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else html.escape(str(x))


def _point(params: dict[str, Any]) -> str:
    """A sweep point as ``key=value, ...`` (or "all" when the runs swept nothing in common)."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items()) or "all"


def _stats_table(summary: dict[str, Any]) -> str:
    """The per-scorer and total statistics of one summary as an HTML table."""
    rows = ["<tr><th>score</th><th>mean A</th><th>mean B</th><th>median A</th><th>median B</th>"
            "<th>B − A</th><th>95 % CI</th><th>B wins</th></tr>"]
    stats = dict(summary["scorers"])
    if "total" in summary:
        stats["total"] = summary["total"]
    for name, s in stats.items():
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{_fmt(s['mean_a'])}</td><td>{_fmt(s['mean_b'])}</td>"
                    f"<td>{_fmt(s['median_a'])}</td><td>{_fmt(s['median_b'])}</td><td>{_fmt(s['mean_diff'])}</td>"
                    f"<td>[{_fmt(s['ci95'][0])}, {_fmt(s['ci95'][1])}]</td><td>{s['win_rate_b']:.0%}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


def _agreement_table(agreement: dict[str, dict[str, float | None]]) -> str:
    """Scorer pairs as rows, A and B as columns; a pair without a correlation says why instead of ``null``."""
    keys = sorted(set(agreement.get("a", {})) | set(agreement.get("b", {})))
    if not keys:
        return "<p>Fewer than two scorers: nothing to correlate.</p>"

    def cell(value: float | None) -> str:
        return "<td title='one of the two scorers gave every candidate the same value'>—</td>" if value is None \
            else f"<td>{value:+.2f}</td>"

    rows = "".join(f"<tr><td>{html.escape(k.replace('~', ' ~ '))}</td>{cell(agreement.get('a', {}).get(k))}"
                   f"{cell(agreement.get('b', {}).get(k))}</tr>" for k in keys)
    return ("<p>How alike two scorers rank one run's candidates (+1 the same order, 0 unrelated); — where one "
            "of them gave every candidate the same value, so there is no order to compare.</p>"
            f"<table><tr><th>scorers</th><th>A</th><th>B</th></tr>{rows}</table>")


def write_compare(result: dict[str, Any], out_dir: Path) -> Path:
    """Write compare.json and report.html (statistics overall and per sweep point, images side by side)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "compare.json", json.dumps(result, indent=2).encode())
    rel_a = Path(result["a"]).resolve()
    rel_b = Path(result["b"]).resolve()

    def src(root: Path, image: str) -> str:
        import os

        return html.escape(os.path.relpath(root / image, out_dir.resolve()))

    points = "".join(f"<h3>{html.escape(_point(p['params']))} ({p['pairs']} pairs)</h3>{_stats_table(p)}"
                     for p in result["points"]) if len(result["points"]) > 1 else ""
    pairs = []
    for r in result["rows"]:
        pairs.append(
            f"<tr><td>{html.escape(r['product'])}<br>seed {r['seed']}<br>{html.escape(_point(r['params']))}</td>"
            f"<td class='{'kept' if r['a_kept'] else ''}'><img src='{src(rel_a, r['a_image'])}'><br>{_fmt(r['a_total'])}</td>"
            f"<td class='{'kept' if r['b_kept'] else ''}'><img src='{src(rel_b, r['b_image'])}'><br>{_fmt(r['b_total'])}</td></tr>")
    page = (
        "<!doctype html><meta charset='utf-8'><title>ecomforge compare</title><style>"
        "body{font:14px system-ui;margin:24px}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px}"
        "img{width:200px}td.kept{background:#e6f5ea}</style>"
        f"<h1>A/B comparison</h1><p>A: {html.escape(result['a'])}<br>B: {html.escape(result['b'])}<br>"
        f"{result['pairs']} paired candidates (same {html.escape(', '.join(result['paired_on']))}); unpaired "
        f"A {result['unpaired']['a']}, B {result['unpaired']['b']}; kept A {result['kept']['a']}, "
        f"B {result['kept']['b']}</p>{_stats_table(result)}"
        + (f"<h2>Per sweep point</h2>{points}" if points else "")
        + f"<h2>Scorer agreement (Spearman)</h2>{_agreement_table(result['agreement'])}"
        + (f"<h2>Same candidates</h2><pre>{html.escape(json.dumps(result['same_candidates'], indent=1))}</pre>"
           if "same_candidates" in result else "")
        + f"<h2>Side by side</h2><table><tr><th></th><th>A</th><th>B</th></tr>{''.join(pairs)}</table>")
    atomic_write_bytes(out_dir / "report.html", page.encode())
    return out_dir
