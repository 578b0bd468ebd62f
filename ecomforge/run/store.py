"""The run folder: resolved recipe, append-only manifest, images, report; resumable after a crash."""
from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import InputError, UsageError
from ..hookspecs import hookimpl
from ..imaging.infotext import candidate_text, scrub_paths
from ..imaging.io import IMAGE_FORMATS, atomic_write_bytes, encode_image, read_png, save_png
from ..types import Candidate, Mask, Reference
from .context import RunContext
from .ids import canonical_json

MANIFEST = "manifest.jsonl"
RECIPE = "recipe.yaml"
FAILED = "failed.csv"
PRODUCT_FAILED = "product_failed"  # the "record" kind of a manifest line saying a whole product failed


def new_run_id(name: str) -> str:
    """``<recipe name>-<UTC date-time>-<4 random hex>``: sortable and unique."""
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80] or "_"


class RunStore:
    """Reads and writes one run folder. A hook plugin of its own run only (see run/hooks.py)."""

    hook_errors = "raise"  # a run folder that cannot be written must stop the run, not warn

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.records: list[dict[str, Any]] = []
        self.failures: dict[str, dict[str, Any]] = {}  # product -> {"product", "step", "plugin", "reason"}
        self._done_products: set[str] = set()

    # --- creating and opening -------------------------------------------------------------
    @classmethod
    def create(cls, parent: Path, run_id: str, resolved_recipe: dict[str, Any]) -> "RunStore":
        """Make a new run folder and write the resolved recipe into it."""
        parent = Path(parent)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            root = parent / run_id
            root.mkdir(exist_ok=False)
            for sub in ("references", "masks", "candidates", "selected"):
                (root / sub).mkdir()
            probe = root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"{parent}: cannot write the run folder ({exc.strerror or exc})") from exc
        store = cls(root)
        atomic_write_bytes(root / RECIPE, yaml.safe_dump(resolved_recipe, sort_keys=False, allow_unicode=True).encode())
        (root / MANIFEST).touch()
        return store

    @classmethod
    def open(cls, root: Path) -> "RunStore":
        """Open an existing run folder to resume it; repairs a manifest cut off mid-write."""
        root = Path(root)
        if not (root / RECIPE).is_file():
            raise InputError(f"{root}: not a run folder (no {RECIPE})")
        if not os.access(root, os.W_OK):
            raise UsageError(f"{root}: run folder is not writable")
        store = cls(root)
        for leftover in root.rglob(".*.tmp"):  # a write killed before its rename
            leftover.unlink(missing_ok=True)
        store._load_manifest()
        store.settle()
        return store

    def discard_if_empty(self) -> bool:
        """Delete this run folder if no candidate was written to it yet; True when it was deleted."""
        import shutil

        if self.records or any((self.root / "candidates").glob("*.png")):
            return False
        shutil.rmtree(self.root, ignore_errors=True)
        return True

    def stored_recipe(self) -> dict[str, Any]:
        """The resolved recipe this run was started with."""
        return yaml.safe_load((self.root / RECIPE).read_text(encoding="utf-8"))

    def _load_manifest(self) -> None:
        path = self.root / MANIFEST
        raw = path.read_bytes() if path.exists() else b""
        keep = raw[: raw.rfind(b"\n") + 1]  # a line without its newline was cut off mid-write
        records = []
        for line in keep.splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
        if len(keep) != len(raw):
            with open(path, "r+b") as fh:
                fh.truncate(len(keep))
        self.records = [r for r in records if r.get("record") != PRODUCT_FAILED]
        if len(self.records) != len(records):  # a resumed run retries its failed products
            data = b"".join((canonical_json(r) + "\n").encode() for r in self.records)
            atomic_write_bytes(path, data)

    def settle(self) -> None:
        """Keep only products whose records are complete; a partial trailing product is dropped."""
        counts: dict[str, int] = {}
        expected: dict[str, int] = {}
        for rec in self.records:
            counts[rec["product"]] = counts.get(rec["product"], 0) + 1
            expected[rec["product"]] = rec.get("product_candidates", -1)
        complete = {p for p, n in counts.items() if n == expected[p]}
        good = [r for r in self.records if r["product"] in complete]
        if len(good) != len(self.records):
            data = b"".join((canonical_json(r) + "\n").encode() for r in good)
            atomic_write_bytes(self.root / MANIFEST, data)
            self.records = good
        self._done_products = complete

    def product_done(self, product: str) -> bool:
        """True when every record of the product is already in the manifest."""
        return product in self._done_products

    # --- paths ----------------------------------------------------------------------------
    def reference_path(self, ref: Reference) -> Path:
        """Where a reference's normalised PNG goes."""
        return self.root / "references" / _safe(ref.product) / f"{_safe(ref.name)}.png"

    def mask_path(self, ref: Reference) -> Path:
        """Where a reference's mask goes."""
        return self.root / "masks" / _safe(ref.product) / f"{_safe(ref.name)}.png"

    def candidate_path(self, cid: str) -> Path:
        """Where a candidate's PNG goes."""
        return self.root / "candidates" / f"{cid}.png"

    def rel(self, path: Path) -> str:
        """A path relative to the run folder, with forward slashes."""
        return path.relative_to(self.root).as_posix()

    # --- candidates written before scoring, so a crash loses none ---------------------------
    def load_candidate(self, cid: str) -> Candidate | None:
        """A candidate generated before an interruption, or None."""
        path = self.candidate_path(cid)
        if not path.is_file():
            return None
        try:
            pixels, text = read_png(path)
            sidecar = path.with_suffix(".json")  # the exact record; the PNG's own chunk is path-scrubbed
            meta = json.loads(sidecar.read_text(encoding="utf-8") if sidecar.is_file() else text["ecomforge"])
        except Exception:
            return None  # unreadable leftovers are regenerated
        mask = None
        mpath = path.with_suffix(".mask.png")
        if meta.get("has_mask"):
            if not mpath.is_file():
                return None
            mask, _ = read_png(mpath)
        return Candidate(image=pixels[..., :3], seed=meta["seed"], params=meta["params"], plugin=meta["plugin"],
                         models=meta.get("models", {}), mask=mask, failed=meta.get("failed"), info=meta.get("info", {}))

    # --- lifecycle hooks ------------------------------------------------------------------
    @hookimpl
    def on_references(self, run: RunContext, product: str, references: list[Reference]) -> None:
        """Save each reference as PNG (alpha kept)."""
        with _io_timer(run):
            self._save_references(references)

    def _save_references(self, references: list[Reference]) -> None:
        for ref in references:
            path = self.reference_path(ref)
            if path.exists():
                continue
            pixels = ref.image if ref.alpha is None else np.dstack([ref.image, ref.alpha])
            save_png(path, pixels, {"source": scrub_paths(ref.source), "sha256": ref.sha256})

    @hookimpl
    def on_mask(self, run: RunContext, product: str, reference: Reference, mask: Mask) -> None:
        """Save the mask and an overlay of it on the reference for the report."""
        from .overlay import mask_overlay

        with _io_timer(run):
            self._save_mask(reference, mask, mask_overlay)

    def _save_mask(self, reference: Reference, mask: Mask, mask_overlay) -> None:
        save_png(self.mask_path(reference), mask.data, {"label": mask.label, "score": f"{mask.score:.4f}",
                                                        "dilate": str(mask.dilate), "feather": str(mask.feather)})
        overlay = mask_overlay(reference.image, mask.data)
        save_png(self.mask_path(reference).with_suffix(".overlay.png"), overlay)

    @hookimpl
    def on_candidate(self, run: RunContext, record: dict[str, Any], image: Any) -> None:
        """Write the candidate PNG (and its mask) atomically, with its parameters in text chunks."""
        with _io_timer(run, record["id"]):
            self._save_candidate(record, image, run.recipe.output.metadata)

    def _save_candidate(self, record: dict[str, Any], image: Candidate, metadata: str = "full") -> None:
        cand: Candidate = image
        path = self.candidate_path(record["id"])
        if cand.mask is not None:
            save_png(path.with_suffix(".mask.png"), cand.mask)
        meta = {"id": record["id"], "seed": cand.seed, "params": cand.params, "plugin": cand.plugin,
                "models": cand.models, "failed": cand.failed, "info": cand.info, "has_mask": cand.mask is not None}
        # the exact record stays in the run folder; the image itself carries names and hashes, never paths
        atomic_write_bytes(path.with_suffix(".json"), canonical_json(meta).encode())
        save_png(path, cand.image, candidate_text(record, cand, metadata))

    @hookimpl
    def on_product_done(self, run: RunContext, product: str, records: list[dict[str, Any]]) -> None:
        """Copy kept images to selected/, then append the product's records in one write."""
        with _io_timer(run):
            self._append_product(product, records, run.recipe.output)

    def _append_product(self, product: str, records: list[dict[str, Any]], output: Any = None) -> None:
        fmt, quality = (output.format, output.quality) if output is not None else ("png", 92)
        for rec in records:
            if rec["kept"]:
                src = self.root / rec["image"]
                dst = self.root / "selected" / (src.stem + IMAGE_FORMATS[fmt])
                if not dst.exists():
                    if fmt == "png":
                        atomic_write_bytes(dst, src.read_bytes())
                    else:  # storefront formats: re-encoded, with the same parameters text (in EXIF)
                        pixels, text = read_png(src)
                        atomic_write_bytes(dst, encode_image(pixels, fmt, quality=quality, text=text))
                rec["selected"] = self.rel(dst)
        block = "".join(canonical_json(r) + "\n" for r in records).encode()
        with open(self.root / MANIFEST, "ab") as fh:
            fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        self.records.extend(records)
        self._done_products.add(product)

    # --- products that failed: recorded, the others go on ------------------------------------
    def record_failure(self, product: str, step: str, plugin: str, reason: str) -> dict[str, Any]:
        """Append a product's failure to the manifest and rewrite failed.csv; returns the failure record."""
        rec = {"record": PRODUCT_FAILED, "product": product, "step": step, "plugin": plugin,
               "reason": " ".join(reason.split())}
        with open(self.root / MANIFEST, "ab") as fh:
            fh.write((canonical_json(rec) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())
        self.failures[product] = rec
        self.write_failed_csv()
        return rec

    def write_failed_csv(self) -> None:
        """failed.csv: one row per failed product (product, step, plugin, reason); removed when none failed."""
        import csv
        import io

        path = self.root / FAILED
        if not self.failures:
            path.unlink(missing_ok=True)
            return
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["product", "step", "plugin", "reason"])
        for f in self.failures.values():
            writer.writerow([f["product"], f["step"], f["plugin"], f["reason"]])
        atomic_write_bytes(path, buf.getvalue().encode("utf-8"))

    @hookimpl
    def on_run_end(self, run: RunContext, summary: dict[str, Any]) -> None:
        """Write failed.csv (or remove a stale one) and report.html."""
        self.write_failed_csv()
        if run.recipe.output.report:
            from .report import write_report

            with _io_timer(run):
                write_report(self.root, self.records, run, summary)


@contextmanager
def _io_timer(run: RunContext, cid: str | None = None) -> Iterator[None]:
    """Count time spent writing the run folder as the 'io' stage (and per candidate when given)."""
    t0 = time.perf_counter()
    yield
    dt = time.perf_counter() - t0
    run.add_time("io", dt)
    if cid is not None:
        run.extra.setdefault("io", {})[cid] = dt


# Keys every reader of a candidate record relies on (export, compare, recreate, the web UI).
_CANDIDATE_KEYS = ("id", "product", "kept")


def _manifest_lines(run_dir: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of every complete manifest line; a cut-off last line is skipped.

    A run interrupted mid-write leaves its last line incomplete, so only the last line may be
    unreadable; anything else (a hand edit, a line that is not an object) is named, not guessed at.
    """
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise InputError(f"{run_dir}: not a run folder (no {MANIFEST})")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc})") from exc
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == last:
                break  # cut off mid-write: the run (or --resume) rewrites it
            raise InputError(f"{path}: line {i + 1}: not a JSON record ({exc.msg})") from exc
        if not isinstance(rec, dict):
            raise InputError(f"{path}: line {i + 1}: a record must be a JSON object, not {type(rec).__name__}")
        out.append((i + 1, rec))
    return out


def read_manifest(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete candidate record of a run folder's manifest."""
    out = []
    for n, rec in _manifest_lines(run_dir):
        if rec.get("record") == PRODUCT_FAILED:  # candidates only; see read_failures
            continue
        missing = [k for k in _CANDIDATE_KEYS if k not in rec]
        if missing:
            raise InputError(f"{Path(run_dir) / MANIFEST}: line {n}: candidate record without {', '.join(missing)}")
        out.append(rec)
    return out


def read_failures(run_dir: Path) -> list[dict[str, Any]]:
    """The products of a run folder that failed: product, step, plugin and one-line reason."""
    out: dict[str, dict[str, Any]] = {}
    for n, rec in _manifest_lines(run_dir):
        if rec.get("record") == PRODUCT_FAILED:
            if not isinstance(rec.get("product"), str):
                raise InputError(f"{Path(run_dir) / MANIFEST}: line {n}: product_failed record without a product")
            out[rec["product"]] = rec
    return list(out.values())
