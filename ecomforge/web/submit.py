"""Turning a request (uploads, a preset or recipe file, overrides) into a validated, queued job."""
from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import stages
from ..errors import InputError
from .jobs import Job
from .manager import JOB_RECIPE, JobConflict, JobManager, JobNotFound, upload_name
from .recipes import job_recipe, preset_path
from .trust import check_job_paths, count_candidates, pattern_roots, preset_values
from .uploads import (
    Limits,
    TooLarge,
    check_depth,
    check_request_pixels,
    check_texts,
    parse_overrides_json,
    parse_recipe_upload,
    save_mask,
    save_reference,
)


def submit_job(manager: JobManager, recipes_dir: Path, limits: Limits, *, references: list[bytes],
               masks: Sequence[bytes] = (), preset: str | None = None, recipe_file: bytes | None = None,
               prompt: str | None = None, negative_prompt: str | None = None,
               overrides: dict[str, Any] | str | None = None, trust_preset: str | None = None,
               names: Sequence[str | None] = (), label: str | None = None) -> Job:
    """Check everything before the job is queued; a refused job leaves nothing behind.

    ``names`` are the references' own file names (kept so messages name the photo, not ``ref-01.png``);
    ``label`` is the job list's name for a re-run (its first job's preset, not ``upload:<name>``).

    Order matters: the queue bound, counts and sizes are checked before any work, the image headers
    before any pixel is decoded, the job's size before its plan is built, and every path the recipe
    names (``check_job_paths``) before it is queued. ``trust_preset`` names the preset an uploaded
    recipe came from (a re-run), so the values that preset names stay allowed.
    """
    manager.check_room()  # 429 before anything is parsed or decoded
    if not references:
        raise InputError("references: upload at least one product photo")
    if len(references) > limits.max_files or len(masks) > limits.max_files:
        raise TooLarge(f"references: {max(len(references), len(masks))} files is over the limit of {limits.max_files}")
    if masks and len(masks) != len(references):
        raise InputError(f"masks: {len(masks)} masks for {len(references)} references (one each)")
    for what, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        if text is not None and len(text) > limits.max_text:
            raise TooLarge(f"{what}: over {limits.max_text} characters")
    if isinstance(overrides, str) or overrides is None:
        overrides = parse_overrides_json(overrides, limits)
    check_depth(overrides, "overrides", limits)  # the UI's sweep box gives a dict, not JSON text
    with manager.intake_slot():  # parsing, decoding and resolving: a few requests at a time
        return _checked_job(manager, recipes_dir, limits, references=references, masks=masks, preset=preset,
                            recipe_file=recipe_file, prompt=prompt, negative_prompt=negative_prompt,
                            overrides=overrides, trust_preset=trust_preset,
                            names=[upload_name(n) for n in list(names)[:len(references)]], label=label)


def _checked_job(manager: JobManager, recipes_dir: Path, limits: Limits, *, references: list[bytes],
                 masks: Sequence[bytes], preset: str | None, recipe_file: bytes | None, prompt: str | None,
                 negative_prompt: str | None, overrides: dict[str, Any], trust_preset: str | None,
                 names: list[str], label: str | None) -> Job:
    """The recipe parsed, the images' headers and the job's size checked, uploads saved, paths checked, queued."""
    from ..recipe.load import read_yaml, resolve_recipe

    if recipe_file is not None:
        base = parse_recipe_upload(recipe_file, limits)
        label = label or f"upload:{str(base.get('name', 'recipe'))[:64]}"
    elif preset:
        base = read_yaml(preset_path(recipes_dir, preset))
        label = preset
    else:
        raise InputError("recipe: give a preset name (GET /api/recipes) or a recipe file")
    named = [f"reference {i + 1}" + (f" ({names[i]})" if i < len(names) and names[i] else "")
             for i in range(len(references))]
    sizes = check_request_pixels([*((named[i], b) for i, b in enumerate(references)),
                                  *((f"mask {i + 1}", b) for i, b in enumerate(masks))], limits)[:len(references)]
    trusted = _preset_trust(recipes_dir, preset if recipe_file is None else trust_preset)
    # The job's size and prompts from the recipe as asked, before resolve_recipe builds its sweep grid.
    asked = job_recipe(base, references=[Path("ref.png")] * len(references), prompt=prompt,
                       negative_prompt=negative_prompt, overrides=overrides)
    check_texts(asked, limits)  # a prompt from the overrides or an uploaded recipe counts like the form's
    check_job_size(asked, len(references), limits)
    request: dict[str, Any] = {"prompt": prompt, "negative_prompt": negative_prompt, "overrides": overrides,
               "references": len(references), "masks": len(masks)}
    if any(names):
        request["names"] = names
    job = manager.new_job(label, request)
    jdir = manager.store.job_dir(job.id)
    try:
        uploads = jdir / "uploads"
        refs = [save_reference(b, uploads, i, limits) for i, b in enumerate(references)]
        for i, b in enumerate(masks):
            save_mask(b, uploads, i, limits)
        data = job_recipe(base, references=refs, prompt=prompt, negative_prompt=negative_prompt,
                          overrides=overrides, mask_dir=uploads / "masks" if masks else None)
        resolved = resolve_recipe(data, path=jdir / JOB_RECIPE)  # every key and plugin config checked now
        check_texts({"products": {name: {"prompt": plan.prompt, "negative_prompt": plan.negative_prompt, **plan.raw}
                                  for name, plan in resolved.products.items()}}, limits)  # templates filled in
        check_output_pixels(resolved, limits, sizes)
        check_job_paths(resolved, job_dir=jdir, presets_dir=recipes_dir, policy=manager.policy, trusted=trusted)
        manager.submit(job, data, mask_roots=pattern_roots(resolved, trusted))
    except BaseException:
        shutil.rmtree(jdir, ignore_errors=True)
        raise
    return manager.require(job.id)


def check_job_size(data: dict[str, Any], references: int, limits: Limits) -> None:
    """Sweep points, seeds and candidates of one job against the limits (nothing is built to count them)."""
    points, seeds, candidates = count_candidates(data, references)
    for key in ("score", "filter"):  # each scorer or filter runs over every candidate
        steps = data.get(key)
        if isinstance(steps, list) and len(steps) > limits.max_steps:
            raise TooLarge(f"{key}: {len(steps)} steps is over the limit of {limits.max_steps}")
    if points > limits.max_sweep_points:
        raise TooLarge(f"generate.sweep: {points} sweep points is over the limit of {limits.max_sweep_points}")
    if seeds > limits.max_seeds:
        raise TooLarge(f"generate.seeds: {seeds} seeds is over the limit of {limits.max_seeds}")
    if candidates > limits.max_candidates:
        raise TooLarge(f"generate: {candidates} candidates ({points} sweep points x {seeds} seeds x "
                       f"{references} references) is over the limit of {limits.max_candidates} per job")


def canvas_pixels(canvas: str, references: Sequence[tuple[int, int]]) -> int:
    """Pixels of a 'WxH' canvas, or of an 'a:b' one around the largest reference (either way up: EXIF may turn it);
    bounded by the same pixel limit as a sized canvas (``stages.canvas_pixels``)."""
    return max((stages.canvas_pixels(canvas, turned) for w, h in references for turned in ((w, h), (h, w))),
               default=stages.canvas_pixels(canvas, (1, 1)))


def _point_pixels(cls: Any, values: dict[str, Any], references: Sequence[tuple[int, int]]) -> int:
    """The most pixels one candidate costs from any reference either way up (EXIF may turn it): what the generator
    declares, else what its ``size``, ``canvas`` and ``*_side`` settings ask for (``stages.candidate_pixels``)."""
    config = cls.Config.model_validate(values)
    sizes = [s for w, h in references for s in ((w, h), (h, w))] or [(1, 1)]
    return max(stages.candidate_pixels(cls, config, size) for size in sizes)


def check_output_pixels(resolved: Any, limits: Limits, references: Sequence[tuple[int, int]] = ()) -> None:
    """Refuse a canvas over the pixel limit, and a batch of them over the batch budget, before anything runs.

    A 150-byte upload may ask for an 8192x8192 canvas; the pixels a job makes count like those it uploads.
    ``references`` are the uploads' (width, height): an aspect canvas is grown around them.
    """
    from ..plugins import get_registry

    gen = resolved.recipe.generate
    bases = [c["generate"].model_dump() for c in (resolved.configs, *(p.configs for p in resolved.products.values()))
             if "generate" in c]  # per product too: a templated config is validated for each
    # every point of the grid, not each swept value alone: a size may come from two settings swept together
    points = [{**base, **point} for base in bases for point in (resolved.grid or [{}])]
    cls = get_registry().get("generator", gen.plugin).cls
    pixels = max((_point_pixels(cls, p, references) for p in points), default=0)
    seeds = len(gen.seeds) if isinstance(gen.seeds, list) else gen.seeds.count
    batch = min(gen.batch_size, seeds)  # a batch holds at most one canvas per seed
    if pixels > limits.max_pixels:
        raise TooLarge(f"generate.config: a {pixels}-pixel canvas is over the limit of {limits.max_pixels} pixels")
    if pixels * batch > limits.batch_pixels:
        raise TooLarge(f"generate.batch_size: {batch} canvases of {pixels} pixels is over the limit of "
                       f"{limits.batch_pixels} pixels per batch (lower batch_size)")


def _preset_trust(recipes_dir: Path, name: str | None) -> set[str]:
    """The path values the named preset itself uses (none for an uploaded recipe)."""
    if not name:
        return set()
    from ..errors import EcomforgeError
    from ..recipe.load import read_yaml, resolve_recipe

    try:
        path = preset_path(recipes_dir, name)
        return preset_values(resolve_recipe(read_yaml(path), path=path))
    except EcomforgeError:
        return set()


def rerun_overrides(manager: JobManager, job_id: str, candidate_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the job's recipe, overrides) that make exactly one candidate again: its seed and its sweep point."""
    from ..recipe.load import read_yaml
    from ..run.store import read_manifest

    job = manager.get(job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id!r}")
    if not job.run_dir:
        raise JobConflict(f"job {job_id} has no results yet")
    jdir = manager.store.job_dir(job_id)
    rec = next((r for r in read_manifest(jdir / job.run_dir) if r["id"] == candidate_id), None)
    if rec is None:
        raise JobNotFound(f"no candidate {candidate_id!r} in job {job_id}")
    data = read_yaml(jdir / JOB_RECIPE)
    gen = data.get("generate") or {}
    over: dict[str, Any] = {"generate.seeds": [int(rec["seed"])], "generate.sweep": {}}
    for key in gen.get("sweep") or {}:
        if key in rec.get("params", {}):
            over[f"generate.config.{key}"] = rec["params"][key]
    refs = (data.get("inputs") or {}).get("references") or []
    # Only the candidate's own reference (matched by the file's sha256, as the acquirer hashes it).
    same = [r for r in refs if Path(r).is_file() and hashlib.sha256(Path(r).read_bytes()).hexdigest()
            == rec.get("reference_sha256")]
    if same:
        data["inputs"]["references"] = same[:1]
    return data, over


def rerun_candidate(manager: JobManager, recipes_dir: Path, limits: Limits, job_id: str, candidate_id: str) -> Job:
    """A new job that regenerates one candidate (same reference, seed and sweep point)."""
    from ..recipe.safeyaml import safe_dump

    data, over = rerun_overrides(manager, job_id, candidate_id)
    refs = [Path(p).read_bytes() for p in data["inputs"]["references"]]
    jdir = manager.store.job_dir(job_id)
    masks_dir = jdir / "uploads" / "masks"
    # The job had uploaded masks: the same ones again (job_recipe picks the masker that takes them).
    masks = [(masks_dir / f"{Path(p).stem}.png").read_bytes() for p in data["inputs"]["references"]] \
        if manager.require(job_id).request.get("masks") and masks_dir.is_dir() else []
    recipe = safe_dump(data, sort_keys=False).encode()
    job = manager.require(job_id)
    label = job.recipe
    return submit_job(manager, recipes_dir, limits, references=refs, masks=masks, recipe_file=recipe,
                      prompt=data["inputs"].get("prompt"), negative_prompt=data["inputs"].get("negative_prompt"),
                      overrides=over, trust_preset=None if label.startswith("upload:") else label,
                      names=reference_names(job, data["inputs"]["references"]), label=label)


def reference_names(job: Job, references: Sequence[str]) -> list[str]:
    """The upload names of a job's references (``.../ref-02.png`` -> the second photo's name), for a re-run."""
    given = job.request.get("names")
    names: list[Any] = given if isinstance(given, list) else []
    out = []
    for ref in references:
        m = re.fullmatch(r"ref-(\d{2})", Path(ref).stem)
        n = int(m.group(1)) if m else 0
        out.append(str(names[n - 1]) if 0 < n <= len(names) else "")
    return out
