"""What refusing each oversized request of issue 13 costs, against what accepting it used to cost.

    .venv/bin/python bench/bench_web_limits.py

Each case runs in a fresh subprocess (so its peak memory is its own): the server's refusal
(``safe_load`` on a YAML alias bomb, the header check of a 40-megapixel PNG of 39 KB,
the job-size count of 100,000 seeds x a 1,000-point sweep) and the old path (``yaml.safe_load`` then
a JSON dump, a full decode, building the seed list and the sweep grid). Reported: seconds and peak
RSS of each, and old/new ratios. Results: printed, and written to bench/results/web_limits.json.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SETUP = r"""
import io, json, resource, sys, time
levels = 7
lines = ["name: bomb", "a: &a [x, x, x, x, x, x, x, x, x]"]
lines += [f"{n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh"[:levels], "bcdefghi"[:levels])]
BOMB = "\n".join(lines) + "\n"
def big_png():
    from PIL import Image
    buf = io.BytesIO()
    Image.new("L", (6400, 6250)).save(buf, format="PNG")
    return buf.getvalue()
"""

# name -> (setup, refused, accepted): the setup (imports, the test image) is not timed.
CASES = {
    "yaml_bomb": (
        "import yaml\nfrom ecomforge.recipe.safeyaml import safe_load",
        "try:\n    safe_load(BOMB)\nexcept Exception:\n    pass",
        "json.dumps(yaml.safe_load(BOMB))"),
    "pixels_40mp": (
        "from ecomforge.web.uploads import Limits, image_header\nfrom ecomforge.imaging.decode import decode_image\n"
        "data = big_png()",
        "try:\n    image_header(data, 'reference 1', Limits(max_pixels=20_000_000))\nexcept Exception:\n    pass",
        "decode_image(data, max_pixels=50_000_000)"),
    "seeds_x_sweep": (
        "from ecomforge.web.trust import count_candidates",
        "count_candidates({'generate': {'seeds': {'count': 100000}, 'sweep': {'level': list(range(1000))}}}, 1)",
        "seeds = list(range(100000))\ngrid = [{'level': v} for v in range(1000)]\n"
        "jobs = [(p, s) for p in grid for s in seeds[:10000]]  # a tenth of the plan: the whole one does not fit"),
}


def _run(setup: str, body: str) -> dict:
    code = SETUP + "\n" + setup + "\nt0 = time.perf_counter()\n" + body + (
        "\nprint(json.dumps({'seconds': time.perf_counter() - t0, "
        "'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run every case, new way and old way, and write the ratios."""
    baseline = _run("", "pass")
    results = {"baseline_peak_mb": round(baseline["peak_mb"], 1)}
    for name, (setup, new, old) in CASES.items():
        a, b = _run(setup, new), _run(setup, old)
        results[name] = {"refused_s": round(a["seconds"], 4), "accepted_s": round(b["seconds"], 3),
                         "refused_peak_mb": round(a["peak_mb"], 1), "accepted_peak_mb": round(b["peak_mb"], 1),
                         "time_ratio": round(b["seconds"] / max(a["seconds"], 1e-6), 1),
                         "extra_peak_mb": round(b["peak_mb"] - a["peak_mb"], 1)}
        print(name, results[name])
    out = ROOT / "bench/results/web_limits.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
