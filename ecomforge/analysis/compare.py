"""``ecomforge compare``: two run folders (or two recipes run on the same inputs and seeds), side by side."""
from __future__ import annotations

import html
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..imaging.io import atomic_write_bytes
from ..run.store import check_output_file, read_failures, read_manifest
from .pairing import (
    Pair,
    check_records,
    pair_records,
    point_of,
    product_identity,
    shared_keys,
    swept_keys,
    why_unpaired,
)
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
    """Paired statistics (B against A) of every scorer both sides of every pair have, and of the total.

    The intervals resample reference photos (product and reference), not pairs: the seeds of one photo score
    alike, so they are not independent evidence."""
    out: dict[str, Any] = {"pairs": len(pairs), "scorers": {}}
    groups = [f"{product_identity(ra)}|{ra.get('reference_sha256')}" for ra, _ in pairs]
    common = set.intersection(*({*ra.get("scores", {})} & {*rb.get("scores", {})} for ra, rb in pairs))
    for name in sorted(common):
        out["scorers"][name] = paired_summary(np.array([ra["scores"][name] for ra, _ in pairs]),
                                              np.array([rb["scores"][name] for _, rb in pairs]), groups)
    totals = [(ra.get("total"), rb.get("total")) for ra, rb in pairs]
    if all(x is not None and y is not None for x, y in totals):
        out["total"] = paired_summary(np.array([x for x, _ in totals]), np.array([y for _, y in totals]), groups)
    return out


def _expected_products(run_dir: Path) -> set[str] | None:
    """The products a run folder's recipe.yaml names (its products, or the one product of its references)."""
    import yaml

    try:
        recipe = yaml.safe_load((Path(run_dir) / "recipe.yaml").read_text(encoding="utf-8")) or {}
        inputs = recipe.get("inputs") or {}
        if isinstance(inputs.get("products"), dict):
            return {str(p) for p in inputs["products"]}
        if inputs.get("references") and isinstance(recipe.get("name"), str):
            return {recipe["name"]}
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    return None  # a catalogue's products are in its file; not re-read here


def run_warnings(label: str, run_dir: Path, records: list[dict[str, Any]]) -> list[str]:
    """What a reader of the statistics must know about one run: products that failed or never ran."""
    out = []
    failed = {f["product"]: f for f in read_failures(run_dir)}
    for product, f in sorted(failed.items()):
        out.append(f"{label}: product '{product}' failed ({f.get('step', '?')}: {f.get('reason', '?')}); "
                   "it is not in the comparison")
    expected = _expected_products(run_dir)
    if expected is not None:
        missing = sorted(expected - {r["product"] for r in records} - set(failed))
        if missing:
            out.append(f"{label}: no candidates for {', '.join(repr(m) for m in missing)}: the run did not finish "
                       f"(ecomforge run ... --resume {run_dir})")
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r["product"]] += 1
    for product, n in sorted(counts.items()):  # stopped while a product's records were being written
        want = next((r.get("product_candidates") for r in records if r["product"] == product), None)
        if isinstance(want, int) and n < want:
            out.append(f"{label}: product '{product}' has {n} of its {want} candidates: the run did not finish "
                       f"(ecomforge run ... --resume {run_dir})")
    by_photos: dict[tuple, set[str]] = defaultdict(set)
    for r in records:
        by_photos[product_identity(r)].add(r["product"])
    for names in by_photos.values():
        if len(names) > 1:
            out.append(f"{label}: products {', '.join(repr(n) for n in sorted(names))} have the same photos; "
                       "they pair with the other run's in name order, and the rest stay unpaired")
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
    warnings = run_warnings("A", run_a, all_a) + run_warnings("B", run_b, all_b)
    sa, sb = ({k for r in recs for k in r.get("scores", {})} for recs in (a, b))
    only = {"a": sorted(sa - sb), "b": sorted(sb - sa)}
    if only["a"] or only["b"]:
        result["scorers_in_one_run"] = only
        warnings.append("scorers recorded by one run only are left out ("
                        + "; ".join(f"{k.upper()}: {', '.join(v)}" for k, v in only.items() if v)
                        + "); the totals weigh different scorers")
    result["warnings"] = warnings
    by_point: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_point[json.dumps(point_of(pair[0], keys), sort_keys=True)].append(pair)
    result["points"] = [{"params": json.loads(p), **summarise(ps)} for p, ps in by_point.items()]
    result["agreement"] = {"a": scorer_agreement(a), "b": scorer_agreement(b)}
    result["kept"] = {"a": sum(r["kept"] for r in a), "b": sum(r["kept"] for r in b)}  # whole runs
    result["kept_paired"] = {"a": sum(ra["kept"] for ra, _ in pairs), "b": sum(rb["kept"] for _, rb in pairs)}
    same = [(ra, rb) for ra, rb in pairs if ra["id"] == rb["id"]]
    if same:  # the same candidates under two scorer/filter set-ups
        a_only = [(ra, rb) for ra, rb in same if ra["kept"] and not rb["kept"]]
        b_only = [(ra, rb) for ra, rb in same if rb["kept"] and not ra["kept"]]
        result["same_candidates"] = {
            "n": len(same),
            "rank_agreement": spearman([ra["total"] for ra, _ in same], [rb["total"] for _, rb in same]),
            "kept_in_a_only": [ra["id"] for ra, _ in a_only],
            "kept_in_b_only": [ra["id"] for ra, _ in b_only],
            # why the other set-up dropped it: a near-duplicate drop may name a candidate only that run made
            "dropped_because": {**{ra["id"]: rb.get("reason") for ra, rb in a_only},
                                **{ra["id"]: ra.get("reason") for ra, _ in b_only}},
        }
    result["rows"] = [{"product": ra["product"], "reference": ra.get("reference"), "seed": ra["seed"],
                       "params": point_of(ra, keys), "a": ra["id"], "b": rb["id"], "a_image": ra["image"],
                       "b_image": rb["image"], "a_total": ra.get("total"), "b_total": rb.get("total"),
                       "a_kept": ra["kept"], "b_kept": rb["kept"], "a_reason": ra.get("reason"),
                       "b_reason": rb.get("reason")} for ra, rb in pairs]
    return result


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else html.escape(str(x))


def _point(params: dict[str, Any]) -> str:
    """A sweep point as ``key=value, ...`` (or "all" when the runs swept nothing in common)."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items()) or "all"


def _stats_table(summary: dict[str, Any]) -> str:
    """The per-scorer and total statistics of one summary as an HTML table."""
    rows = ["<tr><th>score</th><th>mean A</th><th>mean B</th><th>median A</th><th>median B</th>"
            "<th>B − A</th><th>95 % CI</th><th>B wins</th><th>ties</th></tr>"]
    stats = dict(summary["scorers"])
    if "total" in summary:
        stats["total"] = summary["total"]
    for name, s in stats.items():
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{_fmt(s['mean_a'])}</td><td>{_fmt(s['mean_b'])}</td>"
                    f"<td>{_fmt(s['median_a'])}</td><td>{_fmt(s['median_b'])}</td><td>{_fmt(s['mean_diff'])}</td>"
                    f"<td>[{_fmt(s['ci95'][0])}, {_fmt(s['ci95'][1])}]</td><td>{s['win_rate_b']:.0%}</td>"
                    f"<td>{s['tie_rate']:.0%}</td></tr>")
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
    if os.path.lexists(out_dir) and (out_dir.is_symlink() or not out_dir.is_dir()):
        raise UsageError(f"{out_dir}: exists and is not a folder; give a folder for compare.json and report.html")
    for name in ("compare.json", "report.html"):
        check_output_file(out_dir / name)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{out_dir}: cannot create the folder ({exc.strerror or exc})") from exc
    atomic_write_bytes(out_dir / "compare.json", json.dumps(result, indent=2).encode())
    rel_a = Path(result["a"]).resolve()
    rel_b = Path(result["b"]).resolve()

    def src(root: Path, image: str) -> str:
        return html.escape(os.path.relpath(root / image, out_dir.resolve()))

    points = "".join(f"<h3>{html.escape(_point(p['params']))} ({p['pairs']} pairs)</h3>{_stats_table(p)}"
                     for p in result["points"]) if len(result["points"]) > 1 else ""
    pairs = []
    def side(r: dict[str, Any], side: str, root: Path) -> str:
        reason = r.get(f"{side}_reason")
        why = f"<br><small>{html.escape(reason)}</small>" if reason else ""
        return (f"<td class='{'kept' if r[f'{side}_kept'] else ''}'><img src='{src(root, r[f'{side}_image'])}'>"
                f"<br>{_fmt(r[f'{side}_total'])}{why}</td>")

    for r in result["rows"]:
        pairs.append(
            f"<tr><td>{html.escape(r['product'])}<br>{html.escape(str(r.get('reference') or ''))}<br>seed {r['seed']}"
            f"<br>{html.escape(_point(r['params']))}</td>{side(r, 'a', rel_a)}{side(r, 'b', rel_b)}</tr>")
    page = (
        "<!doctype html><meta charset='utf-8'><title>ecomforge compare</title><style>"
        "body{font:14px system-ui;margin:24px}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px}"
        "img{width:200px}td.kept{background:#e6f5ea}.warning{background:#fef3c7;padding:4px 8px}</style>"
        f"<h1>A/B comparison</h1><p>A: {html.escape(result['a'])}<br>B: {html.escape(result['b'])}<br>"
        f"{result['pairs']} paired candidates (same {html.escape(', '.join(result['paired_on']))}); unpaired "
        f"A {result['unpaired']['a']}, B {result['unpaired']['b']}; kept (whole run) A {result['kept']['a']}, "
        f"B {result['kept']['b']}; kept among the pairs A {result['kept_paired']['a']}, "
        f"B {result['kept_paired']['b']}</p>"
        + "".join(f"<p class='warning'>{html.escape(w)}</p>" for w in result.get("warnings", []))
        + f"{_stats_table(result)}<p>95 % intervals resample whole reference photos (their seeds score alike), "
        "or single pairs where only one photo was compared.</p>"
        + (f"<h2>Per sweep point</h2>{points}" if points else "")
        + f"<h2>Scorer agreement (Spearman)</h2>{_agreement_table(result['agreement'])}"
        + (f"<h2>Same candidates</h2><pre>{html.escape(json.dumps(result['same_candidates'], indent=1))}</pre>"
           if "same_candidates" in result else "")
        + f"<h2>Side by side</h2><table><tr><th></th><th>A</th><th>B</th></tr>{''.join(pairs)}</table>")
    atomic_write_bytes(out_dir / "report.html", page.encode())
    return out_dir
