"""Compare pairs candidates by what defines their image, on run folders written by hand with known answers."""
from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.analysis.compare import compare_runs
from ecomforge.analysis.pairing import pair_records, shared_keys, swept_keys
from ecomforge.errors import UsageError

SHAS = ["a" * 64, "b" * 64]


def record(product: str, ref: int, seed: int, total: float, **params) -> dict:
    """A manifest line as the runner writes it (only the fields compare reads)."""
    # An id in the runner's format (16 hex digits), which every reader of a run folder checks.
    ident = hashlib.sha256(f"{product}-{ref}-{seed}-{json.dumps(params, sort_keys=True)}".encode()).hexdigest()[:16]
    return {"id": ident, "product": product, "reference": f"0{ref}", "reference_sha256": SHAS[ref],
            "references_sha256": SHAS, "seed": seed, "params": {"steps": 20, **params}, "scores": {"s": total},
            "total": total, "kept": total > 0.5, "failed": None, "image": f"candidates/{ident}.png"}


def write_run(folder: Path, records: list[dict], sweep: dict | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if sweep is not None:
        (folder / "recipe.yaml").write_text(yaml.safe_dump({"generate": {"sweep": sweep}}))
    return folder


def base_total(ref: int, seed: int, bg: str) -> float:
    return round(0.3 + 0.1 * ref + 0.02 * seed + {"white": 0.0, "grey": 0.2, "blue": 0.4}[bg], 6)


@pytest.fixture
def runs(tmp_path):
    """A: product 'vase' on white and grey; B: product 'vase-v2' (same photos) on grey and blue, +0.05 on grey."""
    a = [record("vase", r, s, base_total(r, s, bg), background=bg) for bg in ("white", "grey")
         for r in (0, 1) for s in (1, 2, 3)]
    b = [record("vase-v2", r, s, base_total(r, s, bg) + (0.05 if bg == "grey" else 0.0), background=bg)
         for bg in ("grey", "blue") for r in (0, 1) for s in (1, 2, 3)]
    random.Random(0).shuffle(b)  # pairing never depends on order
    return (write_run(tmp_path / "a", a, {"background": ["white", "grey"]}),
            write_run(tmp_path / "b", b, {"background": ["grey", "blue"]}))


def test_products_pair_by_their_photos_and_candidates_by_sweep_point(runs):
    result = compare_runs(*runs)
    assert result["pairs"] == 6 and result["unpaired"] == {"a": 6, "b": 6}
    assert result["paired_on"] == ["product (reference sha256s)", "reference", "seed", "background"]
    assert [p["params"] for p in result["points"]] == [{"background": "grey"}]
    total = result["total"]
    assert total["mean_diff"] == pytest.approx(0.05) and total["win_rate_b"] == 1.0
    for row in result["rows"]:
        ref, seed = int(row["reference"]), row["seed"]
        assert row["b_total"] - row["a_total"] == pytest.approx(0.05)
        assert row["a_total"] == base_total(ref, seed, "grey")


def test_every_shared_sweep_point_is_reported(tmp_path):
    a = [record("p", 0, s, 0.5, background=bg, scale=sc) for bg in ("white", "grey") for sc in (0.6, 0.8)
         for s in (1, 2)]
    b = [record("q", 0, s, 0.5 + (0.1 if sc == 0.8 else -0.1), background=bg, scale=sc)
         for bg in ("white", "grey") for sc in (0.8, 0.6) for s in (1, 2)]
    result = compare_runs(write_run(tmp_path / "a", a, {"background": ["white", "grey"], "scale": [0.6, 0.8]}),
                          write_run(tmp_path / "b", b, {"scale": [0.8, 0.6], "background": ["white", "grey"]}))
    diffs = {json.dumps(p["params"], sort_keys=True): round(p["total"]["mean_diff"], 6) for p in result["points"]}
    assert diffs == {'{"background": "white", "scale": 0.6}': -0.1, '{"background": "white", "scale": 0.8}': 0.1,
                     '{"background": "grey", "scale": 0.6}': -0.1, '{"background": "grey", "scale": 0.8}': 0.1}
    assert all(p["pairs"] == 2 for p in result["points"]) and result["total"]["mean_diff"] == pytest.approx(0.0)


def test_a_config_change_is_what_is_compared_not_a_pairing_key(tmp_path):
    """B changes a fixed setting (steps 20 -> 30): every candidate still pairs with its own slot."""
    a = [record("p", r, s, 0.4, background="white") for r in (0, 1) for s in (1, 2)]
    b = [dict(rec, params={**rec["params"], "steps": 30}, total=0.6, scores={"s": 0.6}) for rec in a]
    result = compare_runs(write_run(tmp_path / "a", a, {}), write_run(tmp_path / "b", b, {}))
    assert result["pairs"] == 4 and result["total"]["mean_diff"] == pytest.approx(0.2)
    assert [p["params"] for p in result["points"]] == [{}]


def test_without_recipe_yaml_the_sweep_is_read_off_the_candidates(tmp_path):
    a = [record("p", 0, s, 0.5, background=bg) for bg in ("white", "grey") for s in (1, 2)]
    assert swept_keys(write_run(tmp_path / "a", a, None), a) == {"background"}


@pytest.mark.parametrize("change, message", [
    (lambda r: dict(r, references_sha256=["c" * 64], reference_sha256="c" * 64), "they share no product"),
    (lambda r: dict(r, seed=r["seed"] + 10), "no seed in common for the same reference photos (A: [1, 2, 3], B: [11])"),
])
def test_nothing_to_pair_is_refused_with_the_reason(runs, tmp_path, change, message):
    a = json.loads((runs[0] / "manifest.jsonl").read_text().splitlines()[0])
    b = write_run(tmp_path / "other", [change(a)], {"background": ["white", "grey"]})
    with pytest.raises(UsageError, match="nothing to compare: " + re.escape(message)) as info:
        compare_runs(runs[0], b)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


slots = st.tuples(st.integers(0, 1), st.integers(0, 3), st.sampled_from(["x", "y", "z"]))


@settings(max_examples=60, deadline=None)
@given(sa=st.lists(slots, max_size=12, unique=True), sb=st.lists(slots, max_size=12, unique=True))
def test_pairing_matches_exactly_the_common_slots(sa, sb):
    a = [record("p", r, s, 0.5, background=bg) for r, s, bg in sa]
    b = [record("q", r, s, 0.5, background=bg) for r, s, bg in sb]
    keys = shared_keys(a, b, {"background"}) if a and b else ["background"]
    pairs = pair_records(a, b, keys)
    assert len(pairs) == len(set(sa) & set(sb))
    assert len(pair_records(b, a, keys)) == len(pairs)
    for ra, rb in pairs:
        assert (ra["reference"], ra["seed"], ra["params"]["background"]) == \
               (rb["reference"], rb["seed"], rb["params"]["background"])


def test_a_hand_edited_manifest_is_refused_naming_the_record(runs, tmp_path):
    good = json.loads((runs[0] / "manifest.jsonl").read_text().splitlines()[0])
    bad = write_run(tmp_path / "bad", [good, {k: v for k, v in good.items() if k != "seed"}], None)
    with pytest.raises(UsageError, match=r"bad/manifest.jsonl: candidate record 2 has no valid 'seed'"):
        compare_runs(runs[0], bad)


values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=3),
                   st.lists(st.integers(0, 2), max_size=2), st.dictionaries(st.text(max_size=2), st.floats(0, 1),
                                                                            max_size=2))


@settings(max_examples=60, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(["id", "product", "seed", "params", "scores", "total", "kept",
                                                 "image", "references_sha256", "reference_sha256"]), values),
                      min_size=1, max_size=3))
def test_any_edit_of_a_record_gives_a_result_or_a_one_line_refusal(tmp_path_factory, edits):
    root = tmp_path_factory.mktemp("hostile")
    a = [record("p", r, s, 0.5, background="white") for r in (0, 1) for s in (1, 2)]
    b = [dict(rec) for rec in a]
    for key, value in edits:
        b[0][key] = value
    try:
        result = compare_runs(write_run(root / "a", a, {}), write_run(root / "b", b, {}))
    except UsageError as exc:
        assert "\n" not in exc.one_line()
    else:
        assert 1 <= result["pairs"] <= 4
