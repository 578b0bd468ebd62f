"""``ecomforge recreate RUN ID``: regenerate one candidate from its manifest record and the model files.

What a record holds for this: the generator plugin and its exact config (``params``), the seed,
the prompts, the reference and mask it was made from (saved in the run folder, the mask with
its paste-back dilate/feather), and, where the generator records them, the seeds it was batched
with, the device, dtypes and library versions (``info.reproduce``). Keys in ``params`` that the
generator derived (and its Config does not take) are set aside, not rejected.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from ..errors import InputError, PluginContractError, UsageError
from .group import cli

if TYPE_CHECKING:
    from ..stages import Generator


def find_record(run_dir: Path, cid: str) -> dict[str, Any]:
    """The manifest record whose id is ``cid`` (or starts with it, when that is unambiguous)."""
    from ..run.store import read_manifest

    records = [r for r in read_manifest(run_dir) if "id" in r]
    hits = [r for r in records if r["id"] == cid] or [r for r in records if r["id"].startswith(cid)]
    if not hits:
        raise InputError(f"{run_dir}: no candidate '{cid}' in manifest.jsonl")
    if len(hits) > 1:
        raise InputError(f"{run_dir}: '{cid}' matches {len(hits)} candidates; give more of the id")
    return hits[0]


def _inputs(run_dir: Path, rec: dict[str, Any]) -> tuple[Any, Any]:
    """The reference and mask the record was generated from, as saved in the run folder."""
    from ..imaging.io import read_png
    from ..run.store import RunStore, inside_run_folder
    from ..types import Mask, Reference

    store = RunStore(run_dir)
    stub = Reference(image=np.zeros((1, 1, 3), np.uint8), source="", sha256="", product=rec["product"],
                     name=rec["reference"])
    where = f"{run_dir}: candidate {rec['id']}"
    ref_path = inside_run_folder(run_dir, store.rel(store.reference_path(stub)), f"{where}: its reference")
    mask_path = inside_run_folder(run_dir, rec["mask"], f"{where}: 'mask'")
    for path in (ref_path, mask_path):
        if not path.is_file():
            raise InputError(f"{run_dir}: {path.relative_to(run_dir)} is missing; it is needed to re-create '{rec['id']}'")
    pixels, ref_text = read_png(ref_path)
    alpha = pixels[..., 3].copy() if pixels.ndim == 3 and pixels.shape[2] == 4 else None
    image = np.ascontiguousarray(pixels[..., :3]) if pixels.ndim == 3 else np.dstack([pixels] * 3)
    reference = Reference(image=image, source=ref_text.get("source", ""), sha256=rec["reference_sha256"],
                          alpha=alpha, product=rec["product"], name=rec["reference"])
    data, mask_text = read_png(mask_path)
    known = (rec.get("info") or {}).get("reproduce", {})
    mask = Mask(data if data.ndim == 2 else data[..., 0], label=mask_text.get("label", ""),
                dilate=int(mask_text.get("dilate", known.get("mask_dilate", 0))),
                feather=int(mask_text.get("feather", known.get("mask_feather", 0))))
    return reference, mask


def _config_for(run_dir: Path, rec: dict[str, Any], cls: type[Generator], mask: Any) -> dict[str, Any]:
    """The generator config the record was made with, verified by recomputing the candidate id.

    Tried in turn: ``params`` without the keys the Config does not take (values the generator
    derived), then the run's recipe config with the sweep keys taken from ``params`` (for
    generators that overwrite a config key with a derived value in ``params``).
    """
    import yaml

    from ..run.ids import candidate_id, mask_sha256

    params = rec["params"]
    tries = [{k: v for k, v in params.items() if k in cls.Config.model_fields}]
    recipe_file = run_dir / "recipe.yaml"
    if recipe_file.is_file():
        gen = (yaml.safe_load(recipe_file.read_text(encoding="utf-8")) or {}).get("generate", {})
        tries.append({**(gen.get("config") or {}), **{k: params[k] for k in gen.get("sweep") or {} if k in params}})
    msha = mask_sha256(mask.data, mask.dilate, mask.feather)
    for config in tries:
        try:
            described = cls(config, device="cpu").describe(cls.parse_config(config))
        except Exception:  # a try that does not validate is simply not the one
            continue
        if candidate_id(product=rec["product"], reference_sha256=rec["reference_sha256"], mask_sha256=msha,
                        plugin=rec["plugin"], params=described, seed=rec["seed"], prompt=rec["prompt"],
                        negative_prompt=rec["negative_prompt"]) == rec["id"]:
            return config
    raise InputError(f"{run_dir}: cannot rebuild the config of '{rec['id']}' (no candidate config gives its id; "
                     "was the run made by another version, or with per-product overrides?)")


def recreate_candidate(run_dir: Path, cid: str, *, device: str | None = None
                       ) -> tuple[dict[str, Any], Any, list[str]]:
    """(record, the regenerated Candidate, what its weight files changed in since the run) for candidate ``cid``.

    The last is empty unless the generator can fingerprint its files now (``fingerprints(config)``, as the
    diffusers generators do) and one differs from what the record's ``models`` holds.
    """
    from ..models import fingerprint_changes
    from ..plugins import get_registry
    from ..stages import Generator
    from ..types import GenerationRequest

    run_dir = Path(run_dir)
    rec = find_record(run_dir, cid)
    reproduce = (rec.get("info") or {}).get("reproduce", {})
    cls = get_registry().get("generator", rec["plugin"]).cls
    if not issubclass(cls, Generator):  # the registry refuses such a class; this names it if one slips in
        raise PluginContractError(rec["plugin"], f"{cls.__name__} is registered as a generator but is not one")
    reference, mask = _inputs(run_dir, rec)
    config = _config_for(run_dir, rec, cls, mask)
    generator = cls(config, device=device or reproduce.get("device") or "auto", path="generate.config")
    # seeds batched together share one call; replay the same batch so nothing batch-dependent differs
    seeds = tuple(reproduce.get("batch_seeds") or [rec["seed"]])
    if rec["seed"] not in seeds:
        seeds = (rec["seed"],)
    generator.ensure_setup()
    request = GenerationRequest(reference, mask, rec["prompt"], rec["negative_prompt"],
                                generator.parse_config(config, path="generate.config"), seeds)
    out = generator.generate(request)
    now = getattr(generator, "fingerprints", None)
    changes = fingerprint_changes(rec.get("models") or {}, now(request.config)) if callable(now) else []
    return rec, out[seeds.index(rec["seed"])], changes


def compare_pixels(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(pixels that differ, largest difference in any channel) between two uint8 images of one size."""
    if a.shape != b.shape:
        return int(max(a.size, b.size)), 255
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(np.count_nonzero(diff.max(axis=-1) if diff.ndim == 3 else diff)), int(diff.max(initial=0))


@cli.command("recreate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("candidate_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where the regenerated PNG goes (default: RUN_DIR/recreated/ID.png).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default=None,
              help="Device (default: the one recorded, else auto).")
def recreate(run_dir: Path, candidate_id: str, out: Path | None, device: str | None) -> None:
    """Regenerate a candidate from its manifest record and check it against the stored image (exit 1 if it differs).

    The regenerated PNG is written in any case. When the stored image is missing (or cannot be read), it
    is written without being compared, with a warning, and the exit code is 0.
    """
    from ..imaging.infotext import candidate_text
    from ..imaging.io import read_png, save_png
    from ..run.store import check_output_file, inside_run_folder

    if out is not None:
        check_output_file(out)  # before the (slow) generation
    rec, cand, changes = recreate_candidate(run_dir, candidate_id, device=device)
    target = out or run_dir / "recreated" / f"{rec['id']}.png"
    check_output_file(target)
    if out is None and os.path.lexists(target.parent) and (target.parent.is_symlink() or not target.parent.is_dir()):
        raise UsageError(f"{target.parent}: is not a folder of the run; give --out")
    stored_path = inside_run_folder(run_dir, rec["image"], f"{run_dir}: candidate {rec['id']}: 'image'")
    try:  # read before writing: --out may be the stored image itself (restoring a deleted one)
        stored, _ = read_png(stored_path)
    except OSError as exc:  # deleted (a pruned run folder) or not a PNG any more: nothing to compare with
        problem = "is missing" if not stored_path.is_file() else f"cannot be read ({exc})"
        save_png(target, cand.image, candidate_text(rec, cand, "full"))
        click.echo(f"warning: {rec['id']}: stored image {rec['image']} {problem}; regenerated image written to "
                   f"{target} (not compared)", err=True)
        return
    save_png(target, cand.image, candidate_text(rec, cand, "full"))
    changed, worst = compare_pixels(stored[..., :3], cand.image)
    if changed == 0:
        click.echo(f"{rec['id']}: bit-exact -> {target}")
        return
    click.echo(f"{rec['id']}: {changed} pixels differ (max {worst} levels) -> {target}", err=True)
    for line in changes:  # a retrained LoRA, a replaced checkpoint: not batching or the device
        click.echo(f"  weights changed since the run: {line}", err=True)
    raise click.exceptions.Exit(1)

