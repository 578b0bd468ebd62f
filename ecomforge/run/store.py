"""The run folder: resolved recipe, append-only manifest, images, report; resumable after a crash."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shlex
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import yaml

from ..errors import InputError, UsageError
from ..hookspecs import hookimpl
from ..imaging.infotext import candidate_text, scrub_paths
from ..imaging.io import IMAGE_FORMATS, atomic_write_bytes, encode_image, png_bytes, read_png, save_png
from ..recipe.catalog import PRODUCT_NAME
from ..recipe.safeyaml import safe_dump, safe_load
from ..types import Candidate, Mask, Reference
from .context import RunContext
from .ids import canonical_json

MANIFEST = "manifest.jsonl"
RECIPE = "recipe.yaml"
FAILED = "failed.csv"
PRODUCT_FAILED = "product_failed"  # the "record" kind of a manifest line saying a whole product failed
LOCK = ".lock"  # held (flock) by the one process running or resuming the folder; holds its pid
PRODUCTS = "products.json"  # each product's inputs when the run started: --resume refuses a changed catalogue
CANDIDATE_ID = re.compile(r"[0-9a-f]{16}")  # what ids.candidate_id makes
REPORT = "report.html"
# What the store reads or writes in a run folder: each must be what it seems (never a symlink out of it).
_RUN_FILES = (RECIPE, MANIFEST, PRODUCTS, FAILED, REPORT)
_RUN_DIRS = ("references", "masks", "candidates", "selected", "recreated")
_PRODUCT_DIRS = ("references", "masks")  # hold one real folder per product
_TAMPERED = "the run folder has been tampered with"


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
        self._lock: IO[bytes] | None = None

    # --- creating and opening -------------------------------------------------------------
    @classmethod
    def create(cls, parent: Path, run_id: str, resolved_recipe: dict[str, Any]) -> "RunStore":
        """Make a new run folder and write the resolved recipe into it."""
        parent = Path(parent)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            root = parent / run_id
            root.mkdir(exist_ok=False)
        except OSError as exc:
            raise UsageError(f"{parent}: cannot write the run folder ({exc.strerror or exc})") from exc
        store = cls(root)
        store._lock = lock_run_folder(root)
        try:
            for sub in ("references", "masks", "candidates", "selected"):
                (root / sub).mkdir()
            probe = root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            store.release()
            raise UsageError(f"{parent}: cannot write the run folder ({exc.strerror or exc})") from exc
        atomic_write_bytes(root / RECIPE, safe_dump(resolved_recipe, sort_keys=False, allow_unicode=True).encode())
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
        check_run_folder(root)  # before anything is written (the lock too)
        store = cls(root)
        store._lock = lock_run_folder(root)  # before anything in the folder is read or repaired
        try:
            check_run_folder(root)  # again, now that no other ecomforge process is writing it
            store._load_manifest()
            for leftover in root.rglob(".*.tmp"):  # a write killed before its rename
                leftover.unlink(missing_ok=True)
            store.settle()
        except BaseException:
            store.release()
            raise
        return store

    def release(self) -> None:
        """Give up the run folder's lock (the end of the run; the OS drops it too if the process dies)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def discard_if_empty(self) -> bool:
        """Delete this run folder if no candidate was written to it yet; True when it was deleted."""
        import shutil

        if self.records or any((self.root / "candidates").glob("*.png")):
            return False
        shutil.rmtree(self.root, ignore_errors=True)
        return True

    def stored_recipe(self) -> dict[str, Any]:
        """The resolved recipe this run was started with (read with the recipes' budget: aliases, nesting, size).

        Raises InputError naming the file when it is not YAML or over the budget."""
        path = self.root / RECIPE
        try:
            return safe_load(path.read_text(encoding="utf-8"), yaml11=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise InputError(f"{path}: not a readable recipe ({problem})") from exc

    def stored_products(self) -> dict[str, str] | None:
        """Product -> fingerprint of its inputs when the run started; None for a folder made before they were kept."""
        path = self.root / PRODUCTS
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: cannot read it ({exc})") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise InputError(f"{path}: not a product -> fingerprint object")
        return data

    def _load_manifest(self) -> None:
        path = self.root / MANIFEST
        raw = path.read_bytes() if path.exists() else b""
        lines, whole = _parse_manifest(path, raw)
        n_whole = raw[:whole].count(b"\n")
        records = [rec for n, rec in lines if n <= n_whole]
        for n, rec in lines:
            if rec.get("record") != PRODUCT_FAILED:
                check_record(self.root, n, rec)  # the resumed run's report links its images
        if whole != len(raw):  # a line cut off mid-write: its product is redone
            fd = _open_regular(path, os.O_RDWR)
            try:
                os.ftruncate(fd, whole)
            finally:
                os.close(fd)
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
        """A candidate generated before an interruption, or None: regenerated unless its files are the ones written.

        A PNG (or mask) whose sha256 is not the one its sidecar recorded was changed after it was written
        (or the sidecar is from before sha256s were kept): trusting it would make the resumed run differ
        from an uninterrupted one.
        """
        path = self.candidate_path(cid)
        sidecar = path.with_suffix(".json")
        mpath = path.with_suffix(".mask.png")
        try:
            if not _is_regular(sidecar):  # a FIFO would block the read forever; a symlink leads anywhere
                return None
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            if not (isinstance(meta, dict) and meta.get("id") == cid and _is_file(self.root, path)
                    and _sha256(path) == meta.get("png_sha256")):
                return None
            if meta.get("has_mask") and not (_is_file(self.root, mpath) and _sha256(mpath) == meta.get("mask_sha256")):
                return None
            pixels, _ = read_png(path)
            mask = read_png(mpath)[0] if meta.get("has_mask") else None
        except Exception:
            return None  # unreadable leftovers are regenerated
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
            pixels = ref.image if ref.alpha is None else np.dstack([ref.image, ref.alpha])
            data = png_bytes(pixels, {"source": scrub_paths(ref.source), "sha256": ref.sha256})
            # a resumed product may have another photo under the same name (a fixed catalogue row): the file
            # the manifest's sha256 names must be the one stored, else recreate and the report differ
            if _is_regular(path) and _sha256(path) == hashlib.sha256(data).hexdigest():
                continue
            atomic_write_bytes(path, data)

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
        png = png_bytes(cand.image, candidate_text(record, cand, metadata))
        mask = png_bytes(cand.mask) if cand.mask is not None else None
        if mask is not None:
            atomic_write_bytes(path.with_suffix(".mask.png"), mask)
        # the sha256s let --resume tell its own files from ones changed (or half-replaced) since
        meta = {"id": record["id"], "seed": cand.seed, "params": cand.params, "plugin": cand.plugin,
                "models": cand.models, "failed": cand.failed, "info": cand.info, "has_mask": mask is not None,
                "png_sha256": hashlib.sha256(png).hexdigest(),
                "mask_sha256": hashlib.sha256(mask).hexdigest() if mask is not None else None}
        # the exact record stays in the run folder; the image itself carries names and hashes, never paths
        atomic_write_bytes(path.with_suffix(".json"), canonical_json(meta).encode())
        atomic_write_bytes(path, png)

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
        _append(self.root / MANIFEST, block)
        self.records.extend(records)
        self._done_products.add(product)

    # --- products that failed: recorded, the others go on ------------------------------------
    def record_failure(self, product: str, step: str, plugin: str, reason: str) -> dict[str, Any]:
        """Append a product's failure to the manifest and rewrite failed.csv; returns the failure record."""
        rec = {"record": PRODUCT_FAILED, "product": product, "step": step, "plugin": plugin,
               "reason": " ".join(reason.split())}
        _append(self.root / MANIFEST, (canonical_json(rec) + "\n").encode())
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
    def on_run_start(self, run: RunContext) -> None:
        """Note each product's inputs, so that --resume can refuse a catalogue whose finished products were edited
        since; a resume notes the products it is about to make (retried with a fixed row, or added)."""
        now = product_fingerprints(run.resolved)
        if run.resumed:
            now = {**(self.stored_products() or {}), **{p: f for p, f in now.items() if not self.product_done(p)}}
        atomic_write_bytes(self.root / PRODUCTS, canonical_json(now).encode())

    @hookimpl
    def on_run_end(self, run: RunContext, summary: dict[str, Any]) -> None:
        """Write failed.csv (or remove a stale one) and report.html, then give up the folder's lock."""
        try:
            self.write_failed_csv()
            if run.recipe.output.report:
                from .report import write_report

                with _io_timer(run):
                    write_report(self.root, self.records, run, summary)
        finally:
            self.release()

    @hookimpl
    def on_run_error(self, run: RunContext, error: BaseException) -> None:
        """The run stopped: the folder is free for a --resume."""
        self.release()


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


def _parse_manifest(path: Path, raw: bytes) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """((line number, record) of each line, how many bytes hold whole lines): only a cut-off last line is dropped.

    A run interrupted mid-write leaves its last line incomplete: the start of a JSON object that does
    not decode, or one without its newline. Anything else that is not a record (a hand edit, ``not json``,
    a broken line before good ones) is named, never guessed at or skipped with every line after it.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}: line {bad}: not UTF-8 text") from exc
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    whole = raw.rfind(b"\n") + 1
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except RecursionError as exc:
            raise InputError(f"{path}: line {i + 1}: not a record (JSON nested too deeply)") from exc
        except json.JSONDecodeError as exc:
            if i == last and line.lstrip().startswith("{"):  # redone by the run (or --resume)
                whole = min(whole, len("\n".join(lines[:i]).encode()) + (1 if i else 0))
                break
            raise InputError(f"{path}: line {i + 1}: not a JSON record ({exc.msg})") from exc
        if not isinstance(rec, dict):
            raise InputError(f"{path}: line {i + 1}: a record must be a JSON object, not {type(rec).__name__}")
        out.append((i + 1, rec))
    return out, whole


def _manifest_lines(run_dir: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of every complete manifest line; a cut-off last line is skipped."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise InputError(f"{run_dir}: not a run folder (no {MANIFEST})")
    if not _is_regular(path):  # a symlink: read from outside the folder
        raise InputError(f"{path}: not a regular file (a symlink?): {_TAMPERED}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from exc
    return _parse_manifest(path, raw)[0]  # a last record without its newline is still whole: read it


# Fields of a candidate record that name a file of the run folder.
_PATH_KEYS = ("image", "mask", "selected")


def check_record(run_dir: Path, n: int, rec: dict[str, Any]) -> None:
    """A candidate record names only its own run folder's files: a manifest is input, and may be tampered with.

    Its id has the runner's format and its product the product-name rule (both name files), and every
    path is relative and, where the file exists, a regular file inside the folder once symlinks resolve.
    """
    where = f"{Path(run_dir) / MANIFEST}: line {n}"
    missing = [k for k in _CANDIDATE_KEYS if k not in rec]
    if missing:
        raise InputError(f"{where}: candidate record without {', '.join(missing)}")
    if not isinstance(rec["id"], str) or not CANDIDATE_ID.fullmatch(rec["id"]):
        raise InputError(f"{where}: 'id' must be 16 hex digits, as the runner makes them, not {rec['id']!r:.60}")
    if not isinstance(rec["product"], str) or not PRODUCT_NAME.fullmatch(rec["product"]) or ".." in rec["product"]:
        raise InputError(f"{where}: 'product' {rec['product']!r:.60} is not a product name "
                         "(1-200 ASCII letters, digits, '.', '_' or '-')")
    _check_types(where, rec)
    ref = rec.get("reference")
    if ref is not None and (not isinstance(ref, str) or not ref.strip() or ref in (".", "..")
                            or any(c in ref for c in "/\\\0:")):
        raise InputError(f"{where}: 'reference' {ref!r:.60} is not a reference name (it names files in the folder)")
    for key in _PATH_KEYS:
        value = rec.get(key)
        if value is None and key != "image":
            continue
        if key == "image" and "image" not in rec:
            continue  # readers that need it say so (compare, export)
        inside_run_folder(run_dir, value, f"{where}: '{key}'")


def _check_types(where: str, rec: dict[str, Any]) -> None:
    """The fields readers act on have their types: a string "false" as ``kept`` would export a dropped image."""
    if not isinstance(rec["kept"], bool):
        raise InputError(f"{where}: 'kept' must be true or false, not {rec['kept']!r:.60}")
    total = rec.get("total")
    if total is not None and (isinstance(total, bool) or not isinstance(total, (int, float))):
        raise InputError(f"{where}: 'total' must be a number or null, not {total!r:.60}")
    for key in ("prompt", "negative_prompt", "reference_sha256"):
        if key in rec and not isinstance(rec[key], str):
            raise InputError(f"{where}: '{key}' must be a string, not {rec[key]!r:.60}")
    for key in ("params", "models", "scores"):
        if key in rec and not isinstance(rec[key], dict):
            raise InputError(f"{where}: '{key}' must be an object, not {rec[key]!r:.60}")


def inside_run_folder(run_dir: Path, rel: Any, where: str) -> Path:
    """``run_dir / rel`` when ``rel`` is a relative path inside the folder whose file, if any, is a regular one."""
    parts = PurePosixPath(rel).parts if isinstance(rel, str) else ()
    if (not isinstance(rel, str) or not rel.strip() or "\\" in rel or "\0" in rel or rel.startswith("/")
            or ".." in parts or re.match(r"[A-Za-z]:", rel)):
        raise InputError(f"{where} must be a relative path inside the run folder, not {rel!r:.80}")
    path = Path(run_dir) / rel
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise InputError(f"{where}: {rel} cannot be resolved ({exc})") from exc
    if not real.is_relative_to(Path(run_dir).resolve()):
        raise InputError(f"{where}: {rel} leads outside the run folder (a symlink)")
    if os.path.lexists(path) and not real.is_file():
        raise InputError(f"{where}: {rel} is not a regular file")
    return path


def _is_file(root: Path, path: Path) -> bool:
    """``path`` is a regular file, and inside ``root`` once symlinks are resolved."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return False
    return real.is_relative_to(root.resolve()) and real.is_file()


_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def candidate_image(run_dir: Path, rec: dict[str, Any], n: int | None = None) -> Path:
    """A record's image, checked for copying out of the run folder: a PNG, JPEG or WebP file inside it."""
    where = f"{Path(run_dir) / MANIFEST}" + (f": line {n}" if n is not None else f": candidate {rec.get('id')}")
    path = inside_run_folder(run_dir, rec.get("image"), f"{where}: 'image'")
    if not _is_file(Path(run_dir), path):
        raise InputError(f"{where}: its image {rec['image']} is missing",
                         hint=f"regenerate it from its record: ecomforge recreate {shlex.quote(str(run_dir))} "
                              f"{rec.get('id')} --out {shlex.quote(str(path))}")
    with open(path, "rb") as fh:
        head = fh.read(12)
    if not (head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")):
        raise InputError(f"{where}: its image {rec['image']} is not a PNG, JPEG or WebP file")
    return path


def check_output_file(path: Path) -> None:
    """Refuse to write over something that is not a regular file (a device, a FIFO, a folder) or is a symlink.

    Files are written by renaming a temporary file into place: that would replace ``/dev/full`` or a
    symlink with a regular file, and a FIFO would block a plain write.
    """
    path = Path(path)
    if path.is_symlink():
        raise UsageError(f"{path}: is a symlink; give the path of a regular file (it is not replaced)")
    if os.path.lexists(path) and not path.is_file():
        raise UsageError(f"{path}: exists and is not a regular file (a folder, device or FIFO); give a file path")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def product_fingerprints(resolved: Any) -> dict[str, str]:
    """Product -> sha256 of what defines its candidates: references, prompts and its own (catalogue) configs."""
    def configs(plan: Any) -> dict[str, Any]:
        return {step: c.model_dump(mode="json") if hasattr(c, "model_dump") else c for step, c in plan.configs.items()}

    return {name: hashlib.sha256(canonical_json({
        "references": plan.references, "prompt": plan.prompt, "negative_prompt": plan.negative_prompt,
        "configs": configs(plan)}).encode()).hexdigest() for name, plan in resolved.products.items()}


def lock_run_folder(root: Path) -> IO[bytes] | None:
    """Hold the run folder exclusively (``flock`` on its ``.lock``): two runs in one folder would mix their manifests.

    The lock goes with the open file: closed by ``RunStore.release`` or, on a crash, by the OS.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): unlocked, as before
        return None
    try:  # no O_TRUNC: the file is checked (and locked) before anything is written to it
        fd = _open_regular(Path(root) / LOCK, os.O_RDWR | os.O_CREAT, one_link=True)
    except InputError as exc:
        raise UsageError(exc.message) from None
    except OSError as exc:
        raise UsageError(f"{root}: cannot lock the run folder ({exc.strerror or exc})") from exc
    fh = os.fdopen(fd, "r+b")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        pid = fh.read(20).decode("ascii", "replace").strip() or "?"
        fh.close()
        raise UsageError(f"{root} is in use by another ecomforge run (pid {pid})",
                         hint="wait for it to finish, or stop it first") from None
    fh.truncate(0)
    fh.write(f"{os.getpid()}\n".encode())
    fh.flush()
    return fh


def read_manifest(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete candidate record of a run folder's manifest, each checked by ``check_record``."""
    return [rec for _, rec in manifest_records(run_dir)]


def manifest_records(run_dir: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of every candidate record, checked: what ``read_manifest`` reads, with its lines."""
    out = []
    for n, rec in _manifest_lines(run_dir):
        if rec.get("record") == PRODUCT_FAILED:  # candidates only; see read_failures
            continue
        check_record(run_dir, n, rec)
        out.append((n, rec))
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


def _is_regular(path: Path) -> bool:
    """``path`` is itself a regular file: not a symlink, FIFO, device or folder (``lstat``, never followed)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _open_regular(path: Path, flags: int, *, one_link: bool = False) -> int:
    """A descriptor of ``path`` opened without following a symlink; refused unless it is a regular file (and, with
    ``one_link``, not a hard link to a file elsewhere: the lock file, written before anything is checked)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # a symlink, dangling or not; a FIFO without a reader
            raise InputError(f"{path}: not a regular file (a symlink?): {_TAMPERED}") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (one_link and st.st_nlink != 1):
        os.close(fd)
        raise InputError(f"{path}: not a regular file (a symlink?): {_TAMPERED}")
    return fd


def _append(path: Path, data: bytes) -> None:
    """Append to a file of the run folder (the manifest), durably; a symlink in its place is refused."""
    fd = _open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def check_run_folder(root: Path) -> None:
    """Every entry the store reads or writes is what it seems: its files regular files, its folders real folders.

    A symlink among them would make a resume read or write outside the run folder (appending to a file
    elsewhere, writing candidates into another folder); a FIFO would block it. Refused, naming the entry.
    """
    root = Path(root)
    for name in _RUN_FILES:
        try:
            mode = os.lstat(root / name).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            raise InputError(f"{root / name}: not a regular file (a symlink?): {_TAMPERED}")
    for name in _RUN_DIRS:
        folder = root / name
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(mode):
            raise InputError(f"{folder}: not a folder (a symlink?): {_TAMPERED}")
        if name in _PRODUCT_DIRS:
            for entry in os.scandir(folder):
                if not entry.is_dir(follow_symlinks=False):
                    raise InputError(f"{folder / entry.name}: not a folder (a symlink?): {_TAMPERED}")
