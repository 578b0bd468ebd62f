"""``ecomforge compare``: two run folders (or two recipes run on the same inputs and seeds), side by side."""
from __future__ import annotations

import html
import json
import os
import shlex
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, UsageError
from ..imaging.io import atomic_write_bytes
from ..run.store import RunStore, check_output_file, check_run_folder, inside_run_folder, read_failures, read_manifest
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


def summarise(pairs: list[Pair], weights: dict[str, float] | None = None) -> dict[str, Any]:
    """Paired statistics (B against A) of every scorer both sides of every pair have, and of the total.

    The intervals resample reference photos (product and reference), not pairs: the seeds of one photo score
    alike, so they are not independent evidence. With ``weights`` (A's, when the runs weigh their scorers
    differently) also ``total_a_weights``: both sides' totals recomputed with them, so B − A is the images'."""
    out: dict[str, Any] = {"pairs": len(pairs), "scorers": {}}
    groups = [f"{product_identity(ra)}|{ra.get('reference_sha256')}" for ra, _ in pairs]
    common = set.intersection(*({*ra.get("scores", {})} & {*rb.get("scores", {})} for ra, rb in pairs))
    for name in sorted(common):
        out["scorers"][name] = paired_summary(np.array([ra["scores"][name] for ra, _ in pairs]),
                                              np.array([rb["scores"][name] for _, rb in pairs]), groups)
    totals = [(ra.get("total"), rb.get("total")) for ra, rb in pairs]
    if all(x is not None and y is not None for x, y in totals):
        out["total"] = paired_summary(np.array([x for x, _ in totals]), np.array([y for _, y in totals]), groups)
    if weights:
        again = [(_reweighed(ra, weights, common), _reweighed(rb, weights, common)) for ra, rb in pairs]
        if again and all(x is not None and y is not None for x, y in again):
            out["total_a_weights"] = paired_summary(np.array([x for x, _ in again]),
                                                    np.array([y for _, y in again]), groups)
    return out


def _stored_recipe(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's recipe.yaml as a mapping, or None where it has none (or none that reads as one)."""
    import yaml

    try:
        recipe = RunStore(Path(run_dir)).stored_recipe()
    except (OSError, UnicodeDecodeError, yaml.YAMLError, InputError):
        return None
    return recipe if isinstance(recipe, dict) else None


def _expected_products(run_dir: Path, recipe: dict[str, Any] | None = None) -> set[str] | None:
    """The products a run was to make: products.json (every product of the run, catalogue ones too), else the
    products its recipe.yaml names (its products, or the one product of its references); None when unknown."""
    stored = RunStore(Path(run_dir)).stored_products()  # checked: a product -> fingerprint object
    if stored is not None:
        return set(stored)
    recipe = _stored_recipe(run_dir) if recipe is None else recipe
    inputs = (recipe or {}).get("inputs")
    if not isinstance(inputs, dict):
        return None
    if isinstance(inputs.get("products"), dict):
        return {str(p) for p in inputs["products"]}
    if inputs.get("references") and isinstance((recipe or {}).get("name"), str):
        return {str((recipe or {})["name"])}
    return None  # an older catalogue run: its products are in the catalogue file, not re-read here


def resume_command(run_dir: Path) -> str:
    """The command that finishes a run folder: its own recipe.yaml, which --resume runs anyway."""
    return f"ecomforge run {shlex.quote(str(Path(run_dir) / 'recipe.yaml'))} --resume {shlex.quote(str(run_dir))}"


def _names(names: list[str], shown: int = 3) -> str:
    """Up to ``shown`` names, quoted, and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(n) for n in names[:shown]) + more


def missing_products(run_dir: Path, records: list[dict[str, Any]],
                     failed: set[str] | None = None) -> tuple[list[str], int | None]:
    """(products the run was to make that have no candidates and did not fail, how many it was to make)."""
    expected = _expected_products(run_dir)
    if expected is None:
        return [], None
    failed = {f["product"] for f in read_failures(run_dir)} if failed is None else failed
    return sorted(expected - {r["product"] for r in records} - failed), len(expected)


def incomplete_note(run_dir: Path) -> str | None:
    """One line on a run that did not finish (products without candidates), with the command that finishes it."""
    missing, expected = missing_products(run_dir, read_manifest(run_dir))
    if not missing:
        return None
    return (f"{run_dir} is incomplete: {len(missing)} of its {expected} products have no candidates "
            f"({_names(missing)}); finish it with: {resume_command(run_dir)}")


def run_warnings(label: str, run_dir: Path, records: list[dict[str, Any]]) -> list[str]:
    """What a reader of the statistics must know about one run: products that failed or never ran."""
    out = []
    failed = {f["product"]: f for f in read_failures(run_dir)}
    for product, f in sorted(failed.items()):
        out.append(f"{label}: product '{product}' failed ({f.get('step', '?')}: {f.get('reason', '?')}); "
                   "it is not in the comparison")
    missing, expected = missing_products(run_dir, records, set(failed))
    if missing:
        out.append(f"{label}: no candidates for {len(missing)} of its {expected} products ({_names(missing)}): "
                   f"the run did not finish (finish it with: {resume_command(run_dir)})")
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r["product"]] += 1
    for product, n in sorted(counts.items()):  # stopped while a product's records were being written
        want = next((r.get("product_candidates") for r in records if r["product"] == product), None)
        if isinstance(want, int) and n < want:
            out.append(f"{label}: product '{product}' has {n} of its {want} candidates: the run did not finish "
                       f"(finish it with: {resume_command(run_dir)})")
    by_photos: dict[tuple, set[str]] = defaultdict(set)
    for r in records:
        by_photos[product_identity(r)].add(r["product"])
    for names in by_photos.values():
        if len(names) > 1:
            out.append(f"{label}: products {', '.join(repr(n) for n in sorted(names))} have the same photos; "
                       "they pair with the other run's in name order, and the rest stay unpaired")
    return out


_MISSING = "(not set)"


def _flat(value: Any, prefix: str, out: dict[str, Any]) -> None:
    """Dotted key -> leaf value; the score steps keyed by scorer name (``score.parts.weight``), other lists of
    objects by position, lists of plain values (seeds, sweep values) kept whole."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(v, f"{prefix}{k}.", out)
        if value:
            return
    elif prefix == "score." and isinstance(value, list) and all(isinstance(s, dict) for s in value):
        for i, s in enumerate(value):
            _flat(s, f"score.{s.get('name') or s.get('plugin') or i}.", out)
        return
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flat(v, f"{prefix}{i}.", out)
        return
    out[prefix.rstrip(".")] = value


def recipe_differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every recipe key (dotted) whose value differs between two runs' recipe.yaml: what the A/B changed."""
    if a is None or b is None:
        return []
    fa: dict[str, Any] = {}
    fb: dict[str, Any] = {}
    _flat(a, "", fa)
    _flat(b, "", fb)
    keys = [*fa, *(k for k in fb if k not in fa)]
    return [{"key": k, "a": fa.get(k, _MISSING), "b": fb.get(k, _MISSING)} for k in keys
            if _canon_value(fa.get(k, _MISSING)) != _canon_value(fb.get(k, _MISSING))]


def _canon_value(value: Any) -> str:
    """A recipe value as canonical JSON, so 1 and 1.0 are the same weight."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, default=str)


def _short(value: Any, width: int = 60) -> str:
    """A recipe value in one short line."""
    text = value if value == _MISSING else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[:width - 1] + "…"


def score_steps(recipe: dict[str, Any] | None) -> dict[str, dict[str, Any]] | None:
    """Scorer name -> {plugin, weight, config} of a run's score steps, or None without a readable recipe."""
    steps = (recipe or {}).get("score")
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        return None
    out = {}
    for s in steps:
        weight = s.get("weight", 1.0)
        out[str(s.get("name") or s.get("plugin"))] = {
            "plugin": s.get("plugin"), "config": s.get("config") or {},
            "weight": float(weight) if isinstance(weight, (int, float)) and not isinstance(weight, bool) else None}
    return out


def score_step_differences(a: dict[str, dict[str, Any]] | None,
                           b: dict[str, dict[str, Any]] | None) -> dict[str, Any] | None:
    """How two runs' score steps differ (scorers in one only, weights, plugins or configs), or None when alike."""
    if a is None or b is None:
        return None
    both = sorted(set(a) & set(b))
    out: dict[str, Any] = {
        "only_a": sorted(set(a) - set(b)), "only_b": sorted(set(b) - set(a)),
        "weights": {k: [a[k]["weight"], b[k]["weight"]] for k in both if a[k]["weight"] != b[k]["weight"]},
        "configs": [k for k in both if (a[k]["plugin"], _canon_value(a[k]["config"]))
                    != (b[k]["plugin"], _canon_value(b[k]["config"]))]}
    return out if any(out.values()) else None


def _score_warning(diff: dict[str, Any]) -> str:
    """The one line that says the two totals are not one measure, and what to read instead."""
    parts = []
    if diff["weights"]:
        parts.append("weights differ: " + ", ".join(f"{k} {_num(wa)} -> {_num(wb)}"
                                                   for k, (wa, wb) in diff["weights"].items()))
    if diff["configs"]:
        parts.append(f"plugin or config differs: {', '.join(diff['configs'])}")
    for side in ("a", "b"):
        if diff[f"only_{side}"]:
            parts.append(f"only {side.upper()} scores {', '.join(diff[f'only_{side}'])}")
    return ("the runs' score steps differ (" + "; ".join(parts) + "): the total's B−A mixes the weighting with "
            "the images; the per-scorer lines compare like with like"
            + ("; 'total (A's weights)' re-weighs both runs' scores with A's weights (images only)"
               if diff["weights"] else ""))


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _reweighed(rec: dict[str, Any], weights: dict[str, float], names: set[str]) -> float | None:
    """A candidate's total under ``weights``, over the scorers ``names`` (those both candidates of a pair have)."""
    use = [(w, rec["scores"][k]) for k, w in weights.items() if k in names and k in rec["scores"]]
    wsum = sum(w for w, _ in use)
    return sum(w * v for w, v in use) / wsum if wsum > 0 else None


def same_folder(run_a: Path, run_b: Path) -> bool:
    """Whether two paths are one folder (a trailing slash, a symlink or ``..`` aside)."""
    try:
        return os.path.samefile(run_a, run_b)
    except OSError:
        return Path(run_a).resolve() == Path(run_b).resolve()


def compare_runs(run_a: Path, run_b: Path) -> dict[str, Any]:
    """Statistics of B against A over candidates that show the same image slot, overall and per sweep point."""
    for run in (run_a, run_b):
        check_run_folder(Path(run))  # recipe.yaml and products.json are read below: none through a symlink
    all_a, all_b = read_manifest(run_a), read_manifest(run_b)  # a broken manifest is named first
    if same_folder(run_a, run_b):  # every pair a tie: a comparison of nothing
        raise UsageError(f"{run_a} and {run_b}: A and B are the same run folder; compare two different runs")
    a, b = [r for r in all_a if not r.get("failed")], [r for r in all_b if not r.get("failed")]
    check_records(run_a, a)
    check_records(run_b, b)
    recipe_a, recipe_b = _stored_recipe(run_a), _stored_recipe(run_b)  # each read once, here
    keys = shared_keys(a, b, swept_keys(run_a, a, recipe_a) | swept_keys(run_b, b, recipe_b))
    pairs = pair_records(a, b, keys)
    if not pairs:
        raise UsageError(f"{run_a} and {run_b}: nothing to compare: {why_unpaired(a, b, keys)}")
    steps_a = score_steps(recipe_a)
    step_diff = score_step_differences(steps_a, score_steps(recipe_b))
    weights = ({k: s["weight"] for k, s in (steps_a or {}).items() if s["weight"] is not None}
               if step_diff and (step_diff["weights"] or step_diff["only_a"] or step_diff["only_b"]) else None)
    result: dict[str, Any] = {"a": str(run_a), "b": str(run_b),
                              "paired_on": ["product (reference sha256s)", "reference", "seed", *keys],
                              "unpaired": {"a": len(a) - len(pairs), "b": len(b) - len(pairs)}}
    result.update(summarise(pairs, weights))
    result["recipe_differences"] = recipe_differences(recipe_a, recipe_b)
    if step_diff:
        result["score_steps_differ"] = step_diff
    warnings = run_warnings("A", run_a, all_a) + run_warnings("B", run_b, all_b)
    sa, sb = ({k for r in recs for k in r.get("scores", {})} for recs in (a, b))
    only = {"a": sorted(sa - sb), "b": sorted(sb - sa)}
    if only["a"] or only["b"]:
        result["scorers_in_one_run"] = only
        warnings.append("scorers recorded by one run only are left out ("
                        + "; ".join(f"{k.upper()}: {', '.join(v)}" for k, v in only.items() if v)
                        + "); the totals weigh different scorers")
    if step_diff and (step_diff["weights"] or step_diff["configs"]):  # scorers in one run only: said above
        warnings.append(_score_warning(step_diff))
    result["warnings"] = warnings
    by_point: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_point[json.dumps(point_of(pair[0], keys), sort_keys=True)].append(pair)
    result["points"] = [{"params": json.loads(p), **summarise(ps, weights)} for p, ps in by_point.items()]
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
                       "b_reason": rb.get("reason"), "reference_image": _reference_image(run_a, ra)}
                      for ra, rb in pairs]
    return result


def _reference_image(run_dir: Path, rec: dict[str, Any]) -> str | None:
    """The reference photo a candidate was made from (``references/<product>/<reference>.png``, relative to the
    run folder) when it is a regular file inside the folder; None otherwise (the report then shows none)."""
    ref = rec.get("reference")
    if not isinstance(ref, str):
        return None
    rel = f"references/{rec['product']}/{ref}.png"  # both checked by check_record: plain names
    try:
        path = inside_run_folder(Path(run_dir), rel, rel)
    except InputError:
        return None
    return rel if path.is_file() else None


def _no_negative_zero(x: float, places: int = 3) -> float:
    """``x`` rounded, with -0.0 (a tiny negative rounded away) made 0.0, so no ``-0.000`` is shown."""
    r = round(float(x), places)
    return 0.0 if r == 0 else r


def signed(x: float) -> str:
    """A difference as ``+0.050`` (never ``-0.000``)."""
    return f"{_no_negative_zero(x):+.3f}"


def shares(s: dict[str, Any]) -> str:
    """B's wins, losses and ties as one phrase: ``B wins 0%, loses 0%, ties 100%``."""
    wins = s.get("wins_b", s["win_rate_b"] - s["tie_rate"] / 2)  # a compare.json written before wins_b
    losses = s.get("losses_b", 1 - wins - s["tie_rate"])
    return f"B wins {wins:.0%}, loses {losses:.0%}, ties {s['tie_rate']:.0%}"


def _fmt(x: Any) -> str:
    return f"{_no_negative_zero(x):.3f}" if isinstance(x, float) else html.escape(str(x))


def _point(params: dict[str, Any]) -> str:
    """A sweep point as ``key=value, ...`` (or "all" when the runs swept nothing in common)."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items()) or "all"


def stat_lines(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Label -> statistics of one summary, in print order: each scorer, the total, the total under A's weights."""
    out = dict(summary["scorers"])
    if "total" in summary:
        out["total"] = summary["total"]
    if "total_a_weights" in summary:
        out["total (A's weights)"] = summary["total_a_weights"]
    return out


def _stats_table(summary: dict[str, Any]) -> str:
    """The per-scorer and total statistics of one summary as an HTML table."""
    rows = ["<tr><th>score</th><th>mean A</th><th>mean B</th><th>median A</th><th>median B</th>"
            "<th>B − A</th><th>95 % CI</th><th>B wins</th><th>B loses</th><th>ties</th></tr>"]
    for name, s in stat_lines(summary).items():
        wins = s.get("wins_b", s["win_rate_b"] - s["tie_rate"] / 2)
        losses = s.get("losses_b", 1 - wins - s["tie_rate"])
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{_fmt(s['mean_a'])}</td><td>{_fmt(s['mean_b'])}</td>"
                    f"<td>{_fmt(s['median_a'])}</td><td>{_fmt(s['median_b'])}</td>"
                    f"<td>{html.escape(signed(s['mean_diff']))}</td>"
                    f"<td>[{html.escape(signed(s['ci95'][0]))}, {html.escape(signed(s['ci95'][1]))}]</td>"
                    f"<td>{wins:.0%}</td><td>{losses:.0%}</td><td>{s['tie_rate']:.0%}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


def _differences_section(result: dict[str, Any]) -> str:
    """What the two runs' recipes set differently (the A/B itself), as a table of recipe keys."""
    diffs = result.get("recipe_differences")
    if diffs is None:
        return ""
    if not diffs:
        return "<h2>What differs</h2><p>The two runs' recipe.yaml set every key alike (or one run has none).</p>"
    rows = "".join(f"<tr><td><code>{html.escape(str(d['key']))}</code></td><td>{html.escape(_short(d['a'], 120))}"
                   f"</td><td>{html.escape(_short(d['b'], 120))}</td></tr>" for d in diffs)
    return ("<h2>What differs</h2><p>The recipe keys whose values differ between the two runs' recipe.yaml.</p>"
            f"<table><tr><th>key</th><th>A</th><th>B</th></tr>{rows}</table>")


def _same_section(same: dict[str, Any] | None) -> str:
    """The same candidates under two set-ups: the rank agreement and each candidate only one set-up kept."""
    if not same:
        return ""
    agree = same.get("rank_agreement")
    why = same.get("dropped_because") or {}
    rows = "".join(f"<tr><td><code>{html.escape(str(cid))}</code></td><td>{side}</td>"
                   f"<td>{html.escape(str(why.get(cid) or ''))}</td></tr>"
                   for side, ids in (("A", same.get("kept_in_a_only", [])), ("B", same.get("kept_in_b_only", [])))
                   for cid in ids)
    table = ("<table><tr><th>candidate</th><th>kept by</th><th>why the other set-up dropped it</th></tr>"
             f"{rows}</table>") if rows else "<p>Both set-ups kept the same candidates.</p>"
    return (f"<h2>Same candidates</h2><p>{int(same.get('n', 0))} pairs are the very same images; the rank agreement "
            f"(Spearman) of their totals is {'undefined (one set-up gave them all the same total)' if agree is None else html.escape(f'{agree:+.2f}')}. Kept by one "
            f"set-up only: A {len(same.get('kept_in_a_only', []))}, B {len(same.get('kept_in_b_only', []))}.</p>"
            f"{table}")


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


def check_compare_out(out_dir: Path) -> None:
    """Refuse an ``--out`` that is not a folder, or whose compare.json or report.html is not a regular file;
    checked before anything is read or run, and again when writing."""
    if os.path.lexists(out_dir) and (out_dir.is_symlink() or not out_dir.is_dir()):
        raise UsageError(f"{out_dir}: exists and is not a folder; give a folder for compare.json and report.html")
    for name in ("compare.json", "report.html"):
        check_output_file(out_dir / name)


def write_compare(result: dict[str, Any], out_dir: Path) -> Path:
    """Write compare.json and report.html (statistics overall and per sweep point, images side by side)."""
    check_compare_out(out_dir)
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
        ref = r.get("reference_image")
        photo = f"<img class='ref' src='{src(rel_a, ref)}'>" if isinstance(ref, str) else "<small>no photo</small>"
        pairs.append(
            f"<tr><td>{html.escape(r['product'])}<br>{html.escape(str(r.get('reference') or ''))}<br>seed {r['seed']}"
            f"<br>{html.escape(_point(r['params']))}</td><td>{photo}</td>{side(r, 'a', rel_a)}{side(r, 'b', rel_b)}"
            "</tr>")
    page = (
        "<!doctype html><meta charset='utf-8'><title>ecomforge compare</title><style>"
        "body{font:14px system-ui;margin:24px}table{border-collapse:collapse;margin-bottom:8px}"
        "td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}"
        "img{width:200px}img.ref{width:140px}td.kept{background:#e6f5ea}"
        ".warning{background:#fef3c7;padding:4px 8px}</style>"
        f"<h1>A/B comparison</h1><p>A: {html.escape(result['a'])}<br>B: {html.escape(result['b'])}<br>"
        f"{result['pairs']} paired candidates (same {html.escape(', '.join(result['paired_on']))}); unpaired "
        f"A {result['unpaired']['a']}, B {result['unpaired']['b']}; kept (whole run) A {result['kept']['a']}, "
        f"B {result['kept']['b']}; kept among the pairs A {result['kept_paired']['a']}, "
        f"B {result['kept_paired']['b']}</p>"
        + "".join(f"<p class='warning'>{html.escape(w)}</p>" for w in result.get("warnings", []))
        + _differences_section(result)
        + f"<h2>Statistics</h2>{_stats_table(result)}<p>95 % intervals resample whole reference photos (their seeds "
        "score alike), or single pairs where only one photo was compared."
        + (" The runs weigh their scorers differently: the total's B − A mixes the weighting with the images; "
           "the per-scorer rows compare like with like, and &#x27;total (A&#x27;s weights)&#x27; re-weighs both "
           "runs' scores with A's weights." if "total_a_weights" in result else "")
        + "</p>"
        + (f"<h2>Per sweep point</h2>{points}" if points else "")
        + f"<h2>Scorer agreement (Spearman)</h2>{_agreement_table(result['agreement'])}"
        + _same_section(result.get("same_candidates"))
        + "<h2>Side by side</h2><table><tr><th></th><th>reference photo</th><th>A</th><th>B</th></tr>"
        + f"{''.join(pairs)}</table>")
    atomic_write_bytes(out_dir / "report.html", page.encode())
    return out_dir
