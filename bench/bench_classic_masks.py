"""How well the ``classic`` masker's score tells right masks from wrong ones, on the labelled DreamBench photos.

    .venv/bin/python bench/bench_classic_masks.py [--min-score 0.35] [--overlays DIR]

Reads plugins/ecomforge-classic/tests/data/classic_mask_labels.json (hand labels), masks every
labelled photo with the refusal switched off, and reports AUROC of the score (and of the previous
contrast/noise score) and how many right masks are kept and wrong ones refused at ``--min-score``.
``--overlays`` writes each mask drawn over its photo (what the labels were made from).
Results: printed, and written to bench/results/classic_masks.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "plugins/ecomforge-classic/tests/data/classic_mask_labels.json"
SAMPLES = ROOT / "samples/dreambench"


def masks(config: dict, photos: dict, overlays: Path | None, tag: str) -> list[dict]:
    """One row per labelled photo: label, calibrated score, the previous score, the weakest cue."""
    import cv2

    from ecomforge.errors import NothingFound
    from ecomforge_classic.acquire import LocalAcquirer
    from ecomforge_classic.mask_quality import confidence, measure
    from ecomforge_classic.maskers import ClassicMasker
    from ecomforge_classic.segment import segment, upscale_mask, working_copy

    masker = ClassicMasker({**config, "min_score": 0.0})
    cfg = masker.config
    rows = []
    for rel, row in photos.items():
        (ref,) = LocalAcquirer().acquire([str(SAMPLES / rel)], product="p", base_dir=SAMPLES)
        try:
            mask = masker.mask(ref)
        except NothingFound:
            rows.append({"photo": rel, "variant": tag, "label": row["label"], "score": None})
            continue
        small = working_copy(ref.image, cfg.working_size)
        seg = segment(small, min_contrast=cfg.min_contrast, lightness_weight=cfg.lightness_weight, reach=cfg.reach,
                      detail=cfg.detail, grabcut=cfg.grabcut, convex_hull=cfg.convex_hull)
        cues = measure(small, upscale_mask(mask.data, (small.shape[1], small.shape[0])), seg.distance, seg.noise)
        previous = float(np.clip(1.0 - 2.0 * seg.noise / max(seg.contrast, 1e-6), 0.0, 1.0))
        rows.append({"photo": rel, "variant": tag, "label": row["label"], "score": round(mask.score, 4),
                     "previous": round(previous, 4), "why": confidence(cues)[1], "cues": cues.as_dict()})
        if overlays is not None:
            image = ref.image.copy()
            contours, _ = cv2.findContours(mask.data, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(image, contours, -1, (255, 0, 0), max(2, image.shape[1] // 250))
            name = f"{rel.replace('/', '_')[:-4]}{'-' + tag if tag else ''}.png"
            cv2.imwrite(str(overlays / name), cv2.cvtColor(working_copy(image, 400), cv2.COLOR_RGB2BGR))
    return rows


def main() -> None:
    """Mask, score and summarise."""
    from ecomforge.analysis.stats import auroc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-score", type=float, default=0.35)
    parser.add_argument("--overlays", type=Path)
    args = parser.parse_args()
    labels = json.loads(LABELS.read_text())
    if args.overlays:
        args.overlays.mkdir(parents=True, exist_ok=True)
    rows = masks(labels["config"], labels["photos"], args.overlays, "")
    for name, variant in labels["variants"].items():
        rows += masks(variant["config"], variant["photos"], args.overlays, name)
    scored = [r for r in rows if r["score"] is not None]
    right = [r for r in scored if r["label"] == "right"]
    wrong = [r for r in scored if r["label"] == "wrong"]
    summary = {
        "photos": len(rows), "no_region": len(rows) - len(scored), "right": len(right), "wrong": len(wrong),
        "auroc": round(auroc([r["score"] for r in right], [r["score"] for r in wrong]), 4),
        "auroc_previous_score": round(auroc([r["previous"] for r in right], [r["previous"] for r in wrong]), 4),
        "min_score": args.min_score,
        "right_kept": sum(r["score"] >= args.min_score for r in right),
        "wrong_refused": sum(r["score"] < args.min_score for r in wrong),
        "wrong_accepted": [f"{r['photo']}{'#' + r['variant'] if r['variant'] else ''} ({r['score']:.3f})"
                           for r in wrong if r["score"] >= args.min_score],
    }
    for r in sorted(scored, key=lambda r: -r["score"]):
        print(f"{r['score']:.3f} (was {r['previous']:.3f}) {r['label']:5} {r['photo']:24} {r['variant']:11} {r['why']}")
    print(json.dumps(summary, indent=1))
    out = ROOT / "bench/results"
    out.mkdir(exist_ok=True)
    (out / "classic_masks.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
