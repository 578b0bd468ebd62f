"""Per-candidate cost of the integration scorers on 768² composites, one thread, CPU time.

    .venv/bin/python bench/bench_integration.py [--repeat 20]

Scores 8 composites of a DreamBench product on skimage.data photos against its reference and
prints ms per candidate per scorer (process CPU time, OpenCV on one thread: the "one core"
figure), with the reference measurements cached as in a run (a first call warms the cache).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np

from ecomforge.imaging.masks import bbox
from ecomforge.imaging.paste import composite, paste_alpha
from ecomforge.types import Candidate, ScoringContext
from ecomforge_classic.acquire import LocalAcquirer
from ecomforge_classic.integration import SCORERS
from ecomforge_classic.maskers import ClassicMasker

ROOT = Path(__file__).resolve().parents[1]


def scene(name: str, side: int) -> np.ndarray:
    """A skimage.data photo covering a side×side canvas."""
    from skimage import data

    img = getattr(data, name)()
    img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
    s = side / min(img.shape[:2])
    img = cv2.resize(img, (round(img.shape[1] * s) + 1, round(img.shape[0] * s) + 1), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(img[:side, :side])


def composites(ref, mask, side: int) -> list[Candidate]:
    """The product scaled to 60 % of the frame, on eight photos."""
    alpha = paste_alpha(mask.data, dilate_px=0, feather_px=2)
    x0, y0, x1, y1 = bbox(alpha)
    f = 0.6 * side / max(x1 - x0, y1 - y0)
    size = (round((x1 - x0) * f), round((y1 - y0) * f))
    prod = cv2.resize(ref.image[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    a = cv2.resize(alpha[y0:y1, x0:x1], size, interpolation=cv2.INTER_LINEAR)
    out = []
    for name in ("coffee", "chelsea", "astronaut", "rocket", "camera", "grass", "brick", "gravel"):
        full_a = np.zeros((side, side), np.uint8)
        full_p = np.zeros((side, side, 3), np.uint8)
        top, left = (side - size[1]) // 2, (side - size[0]) // 2
        full_a[top:top + size[1], left:left + size[0]] = a
        full_p[top:top + size[1], left:left + size[0]] = prod
        img = composite(full_p, scene(name, side), full_a)
        out.append(Candidate(img, 0, {}, mask=np.where(full_a >= 128, 255, 0).astype(np.uint8)))
    return out


def main() -> None:
    """Print and save ms per candidate per scorer."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--side", type=int, default=768)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    path = ROOT / "samples/dreambench/vase/02.jpg"
    (ref,) = LocalAcquirer().acquire([str(path)], product="vase", base_dir=ROOT)
    mask = ClassicMasker({"feather": 2}).mask(ref)
    ctx = ScoringContext((ref,), (mask,))
    cands = composites(ref, mask, args.side)
    result = {"side": args.side, "candidates": len(cands), "repeat": args.repeat,
              "input": hashlib.sha256(ref.image.tobytes()).hexdigest()[:12], "ms_per_candidate": {}}
    for cls in SCORERS:
        scorer = cls()
        scorer.score(cands[:1], ctx)  # warm the per-reference cache, as the first call of a run does
        t = time.process_time()
        for _ in range(args.repeat):
            scorer.score(cands, ctx)
        ms = (time.process_time() - t) / (args.repeat * len(cands)) * 1e3
        result["ms_per_candidate"][cls.name] = round(ms, 1)
        print(f"{cls.name:11s} {ms:6.1f} ms / candidate")
    out = ROOT / "bench/results/integration.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
