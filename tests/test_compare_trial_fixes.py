"""What an outside A/B trial found compare and export did not tell: an interrupted catalogue run, totals under
other weights, what the recipes changed, a folder against itself, kept/dropped in an export, the resume hints."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from runfolders import cli, manifest, one_error

from ecomforge.analysis.compare import compare_runs, write_compare
from ecomforge.recipe import load_recipe
from ecomforge.run.runner import run_recipe

TOYCLI = [sys.executable, str(Path(__file__).parent / "toycli.py")]


def _catalogue_recipe(tmp_path: Path, toy_recipe: Path) -> Path:
    """The toy recipe over a four-row catalogue (recipe.yaml then names the catalogue, not its products)."""
    (tmp_path / "catalog.csv").write_text("product,references\np1,seed:1\np2,seed:2\np3,seed:3\np4,seed:4\n")
    path = tmp_path / "cat.yaml"
    path.write_text(toy_recipe.read_text().replace('products: {a: ["seed:1", "seed:2"], b: ["seed:3"]}',
                                                   "catalog: catalog.csv"))
    return path


def _interrupt_after_first_product(run_dir: Path) -> None:
    """Leave a run folder as Ctrl-C after its first product leaves it: only that product's lines written."""
    lines = (run_dir / "manifest.jsonl").read_text().splitlines()
    first = json.loads(lines[0])["product"]
    (run_dir / "manifest.jsonl").write_text("".join(f"{x}\n" for x in lines if json.loads(x)["product"] == first))


def test_an_interrupted_catalogue_run_is_named_with_its_resume_command(toy_registry, toy_recipe, tmp_path, capsys):
    recipe = _catalogue_recipe(tmp_path, toy_recipe)
    a = run_recipe(load_recipe(recipe), out=tmp_path / "a").run_dir
    b = run_recipe(load_recipe(recipe), out=tmp_path / "b").run_dir
    _interrupt_after_first_product(b)
    resume = f"ecomforge run {b / 'recipe.yaml'} --resume {b}"
    (line,) = [w for w in compare_runs(a, b)["warnings"] if w.startswith("B:")]
    assert line == (f"B: no candidates for 3 of its 4 products ('p2', 'p3', 'p4'): the run did not finish "
                    f"(finish it with: {resume})")
    assert not [w for w in compare_runs(a, b)["warnings"] if w.startswith("A:")]
    code, err = cli(capsys, "export", str(b), str(tmp_path / "ds"))  # exports what there is, and says so
    assert code == 0 and len(list((tmp_path / "ds").glob("*.png"))) == 3
    assert err.strip() == (f"note: {b} is incomplete: 3 of its 4 products have no candidates ('p2', 'p3', 'p4'); "
                           f"finish it with: {resume}; then export again into {tmp_path / 'ds'} (it adds only "
                           "what is new)")
    res = subprocess.run([*TOYCLI, *shlex.split(resume)[1:]], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr  # the command given is one that works
    assert not [w for w in compare_runs(a, b)["warnings"] if w.startswith("B:")]
    code, err = cli(capsys, "export", str(b), str(tmp_path / "ds"))
    assert code == 0 and "incomplete" not in err and len(list((tmp_path / "ds").glob("*.png"))) == 12


def _two_scorers(weight_dark: float) -> list[str]:
    return ["score=[{plugin: toy, weight: 1}, {plugin: toy, name: dark, weight: %s, config: {invert: true}}]"
            % weight_dark]


def test_totals_under_other_weights_are_flagged_and_recomputed_under_as(toy_registry, toy_recipe, tmp_path):
    a = run_recipe(load_recipe(toy_recipe, _two_scorers(1)), out=tmp_path / "a").run_dir
    b = run_recipe(load_recipe(toy_recipe, _two_scorers(3)), out=tmp_path / "b").run_dir
    result = compare_runs(a, b)
    assert all(s["mean_diff"] == 0 for s in result["scorers"].values())  # the same images, the same scores
    assert result["total"]["mean_diff"] != 0  # only the weighting moved the total
    assert result["total_a_weights"]["mean_diff"] == 0 and result["total_a_weights"]["tie_rate"] == 1
    assert result["score_steps_differ"]["weights"] == {"dark": [1.0, 3.0]}
    (line,) = [w for w in result["warnings"] if "score steps differ" in w]
    assert line.startswith("the runs' score steps differ (weights differ: dark 1 -> 3): the total's B−A mixes the "
                           "weighting with the images; the per-scorer lines compare like with like")
    assert all("total_a_weights" in p for p in result["points"])
    page = (write_compare(result, tmp_path / "cmp") / "report.html").read_text()
    assert "total (A&#x27;s weights)" in page and "score steps differ" in page
    same = run_recipe(load_recipe(toy_recipe, _two_scorers(1)), out=tmp_path / "c").run_dir
    assert "total_a_weights" not in compare_runs(a, same) and "score_steps_differ" not in compare_runs(a, same)


def test_the_report_says_what_differs_and_shows_readable_same_candidates(toy_registry, toy_recipe, tmp_path):
    a = run_recipe(load_recipe(toy_recipe), out=tmp_path / "a").run_dir
    b = run_recipe(load_recipe(toy_recipe, ["filter.config.fraction=0.25", "score.0.weight=2"]),
                   out=tmp_path / "b").run_dir
    records = manifest(b)
    dropped = next(r for r in records if not r["kept"])
    dropped["reason"] = "dropped: colour ΔE 3.4 <script>alert(1)</script>"  # text from a run folder
    (b / "manifest.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    result = compare_runs(a, b)
    diffs = {d["key"]: (d["a"], d["b"]) for d in result["recipe_differences"]}
    assert diffs == {"filter.config.fraction": (0.5, 0.25), "score.toy.weight": (1.0, 2.0)}
    page = (write_compare(result, tmp_path / "cmp") / "report.html").read_text()
    assert "<h2>What differs</h2>" in page and "<code>filter.config.fraction</code></td><td>0.5</td><td>0.25" in page
    assert "<pre>" not in page and "\\u0394" not in page and "colour ΔE 3.4 &lt;script&gt;" in page
    assert "<script>" not in page
    ref = next(r for r in result["rows"] if r["product"] == "a")["reference_image"]
    assert ref in ("references/a/s1.png", "references/a/s2.png") and (a / ref).is_file()
    assert f"<img class='ref' src='{os.path.relpath(a / ref, tmp_path / 'cmp')}'>" in page


def test_a_folder_is_not_compared_with_itself(done, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(done)
    for other in (done, f"{done}/", link):
        code, err = cli(capsys, "compare", str(done), str(other), "--out", str(tmp_path / "cmp"))
        assert code == 2 and "A and B are the same run folder" in one_error(err)
    assert not (tmp_path / "cmp").exists()


def test_export_all_tells_kept_from_dropped(done, tmp_path, capsys):
    assert cli(capsys, "export", str(done), str(tmp_path / "ds"), "--include", "all")[0] == 0
    rows = [json.loads(x) for x in (tmp_path / "ds" / "metadata.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in manifest(done)}
    assert len(rows) == 18 and sum(r["kept"] for r in rows) == 9
    for row in rows:
        assert row["kept"] is by_id[row["id"]]["kept"] and row["reason"] == by_id[row["id"]]["reason"]
        assert row["score_reasons"] == {}  # the toy scorer gives none


def test_statistics_read_as_wins_losses_and_ties_without_negative_zeros():
    from ecomforge.analysis.compare import shares, signed

    assert shares({"win_rate_b": 0.5, "tie_rate": 1.0, "wins_b": 0.0, "losses_b": 0.0}) == \
        "B wins 0%, loses 0%, ties 100%"
    assert shares({"win_rate_b": 0.25, "tie_rate": 0.5}) == "B wins 0%, loses 50%, ties 50%"  # an older compare.json
    assert signed(-1e-17) == "+0.000" and signed(-0.0004) == "+0.000" and signed(-0.05) == "-0.050"


def test_an_interrupted_compare_of_recipes_names_both_folders(toy_recipe, tmp_path):
    b = tmp_path / "b.yaml"
    b.write_text(toy_recipe.read_text().replace("name: toy", "name: toy-b").replace("plugin: toy\n  sweep",
                                                                                 "plugin: toy\n  config: {delay: 1}\n  sweep"))
    out = tmp_path / "ab"
    proc = subprocess.Popen([*TOYCLI, "compare", str(toy_recipe), str(b), "--out", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((out / "b").glob("toy-b-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (run_a,) = (out / "a").iterdir()
    (run_b,) = (out / "b").iterdir()
    assert f"compare: running A ({toy_recipe}) into {out / 'a'}/" in err  # progress: where each run goes
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted (A finished in {run_a}; B in {run_b}: resume with: ecomforge run {b} "
                           f"--resume {run_b}; then: ecomforge compare RUN_A RUN_B --out {out / 'compare'})"), last


def test_a_run_folders_recipe_is_read_with_the_recipes_budget(toy_registry, toy_recipe, tmp_path, capsys):
    """A run folder from elsewhere whose recipe.yaml is an alias bomb (a few hundred bytes standing for 10^9 values):
    resume refuses it naming the file, and compare still compares the images, without the recipe diff (flattening it
    would never end)."""
    from ecomforge.errors import InputError
    from ecomforge.run.store import RunStore

    a = run_recipe(load_recipe(toy_recipe), out=tmp_path / "a").run_dir
    b = run_recipe(load_recipe(toy_recipe), out=tmp_path / "b").run_dir
    bomb = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    (b / "recipe.yaml").write_text((b / "recipe.yaml").read_text() + "bomb:\n" + "".join(f"  {ln}\n" for ln in bomb))
    try:
        RunStore(b).stored_recipe()
        raise AssertionError("the alias bomb was read")
    except InputError as exc:
        assert f"{b / 'recipe.yaml'}: not a readable recipe (too many aliases" in exc.one_line()
    result = compare_runs(a, b)
    assert result["recipe_differences"] == [] and len(result["rows"]) == 18
    code, err = cli(capsys, "run", str(toy_recipe), "--resume", str(b))
    assert code == 2 and "not a readable recipe" in one_error(err)
