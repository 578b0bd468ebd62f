"""Run every case through every scorer (by registry name) and measure how well each one separates them."""
from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecomforge.errors import EcomforgeError, UsageError

from .cases import PASTED, cases_for, context_for
from .data import DREAMBENCH, load_photos
from .report import contact_sheet, summarise
from .scenes import INTEGRATION, NEEDS_PHOTO_SCENE
from .third import THIRD
from .transforms import ALTERNATE, IDENTITY, Variant

FAILURE_SETS = {"benchmark": IDENTITY, "alternate": ALTERNATE, "third": THIRD}
"""The identity failures `--failures` chooses from."""


@dataclass(frozen=True)
class FailureSet:
    """One `--failures` choice: its identity failures and its integration faults (by kind, and the kinds made on a
    photo scene)."""

    identity: tuple[Variant, ...]
    integration: dict[str, Any]
    needs_photo: frozenset[str]


def failure_set(name: str) -> FailureSet:
    """The identity and integration failures of ``benchmark``, ``alternate`` or ``third``: each set makes every kind
    its own way (the alternate and third integration faults live in integration_alt.py and integration_third.py)."""
    if name not in FAILURE_SETS:
        raise UsageError(f"--failures {name!r}: expected one of {', '.join(FAILURE_SETS)}")
    if name == "alternate":
        from .integration_alt import INTEGRATION_ALT, NEEDS_PHOTO_SCENE_ALT

        return FailureSet(ALTERNATE, INTEGRATION_ALT, NEEDS_PHOTO_SCENE_ALT)
    if name == "third":
        from .integration_third import INTEGRATION_THIRD, NEEDS_PHOTO_SCENE_THIRD

        return FailureSet(THIRD, INTEGRATION_THIRD, NEEDS_PHOTO_SCENE_THIRD)
    return FailureSet(IDENTITY, INTEGRATION, NEEDS_PHOTO_SCENE)

IDENTITY_SCORERS = ("color", "keypoints", "parts", "shape", "texture")
INTEGRATION_SCORERS = ("expansion", "seams", "duplicates", "scene", "framing")
DEFAULT_SCORERS = IDENTITY_SCORERS + INTEGRATION_SCORERS
MODEL_SCORERS = ("clip-image", "clip-text", "dino")  # scorers whose config takes a `model`
QUICK = {"products": ("can", "clock", "teapot", "vase"), "views": 1, "composites": 1,
         "integration": ("expansion", "halo", "duplicate", "bg-flat", "bg-noise", "cut")}


@dataclass(frozen=True)
class Weighted:
    """One scorer of the total: the key it is reported under, its plugin, config and weight."""

    key: str
    plugin: str
    config: dict
    weight: float


def recipe_scorers(path: Path) -> list[Weighted]:
    """The ``score:`` list of a recipe file, each entry checked like the recipe loader checks it."""
    from pydantic import ValidationError

    from ecomforge.recipe.load import read_yaml
    from ecomforge.recipe.schema import Score

    data = read_yaml(path)
    entries = data.get("score") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{path}: no 'score:' list to take the weights from")
    out = []
    for i, entry in enumerate(entries):
        try:
            step = Score.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UsageError(f"{path}: score.{i}{'.' + where if where else ''}: {first['msg']}") from exc
        out.append(Weighted(step.key, step.plugin, dict(step.config), float(step.weight)))
    return out


def recipe_threshold(path: Path | None) -> dict[str, Any] | None:
    """The recipe's ``threshold`` filter rule (``min_score``, ``min_scores``), checked as the filter checks it;
    None when the recipe filters otherwise (the benchmark then reports rankings only)."""
    if path is None:
        return None
    from ecomforge.errors import PluginNotFound
    from ecomforge.plugins import get_registry
    from ecomforge.recipe.load import read_yaml

    steps = (read_yaml(path) or {}).get("filter")
    for step in steps if isinstance(steps, list) else [steps]:
        if isinstance(step, dict) and step.get("plugin") == "threshold":
            try:
                config_cls = get_registry().get("filter", "threshold").cls.Config
            except PluginNotFound:
                return None
            cfg = config_cls.model_validate(step.get("config") or {})
            return {"min_score": float(cfg.min_score), "min_scores": {k: float(v) for k, v in cfg.min_scores.items()}}
    return None


def default_recipe() -> Path | None:
    """recipes/quickstart.yaml of the repository, if the benchmark runs from inside one."""
    from .data import find_samples

    samples = find_samples()
    path = samples.parent.parent / "recipes" / "quickstart.yaml" if samples else None
    return path if path and path.is_file() else None


def tiny_models(folder: Path) -> dict[str, str]:
    """Build the tiny RANDOM-weight CLIP and DINOv2 (for exercising the harness, not for figures)."""
    from ecomforge.testing.tiny_clip import build_tiny_open_clip
    from ecomforge.testing.tiny_dino import build_tiny_dinov2

    clip = str(build_tiny_open_clip(folder / "tiny-open-clip"))
    dino = folder / "tiny-dinov2"
    if not (dino / "model.safetensors").is_file():
        build_tiny_dinov2(dino)
    return {"clip-image": clip, "clip-text": clip, "dino": str(dino)}


def make_scorers(specs: Sequence[Weighted], models: dict[str, str], device: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Create and set up each scorer through the registry; unavailable ones come back with the reason."""
    from ecomforge.plugins import get_registry

    registry = get_registry()
    ready, skipped = {}, {}
    for spec in specs:
        config = dict(spec.config)
        if spec.plugin in models:
            config["model"] = models[spec.plugin]
        try:
            stage = registry.create("scorer", spec.plugin, config, device=device)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # LPIPS's random-trunk warning is reported in the table instead
                stage.ensure_setup()
            ready[spec.key] = stage
        except EcomforgeError as exc:
            skipped[spec.key] = exc.one_line()
    return ready, skipped


def score_photo(photo, photos: dict, stages: dict, seconds: dict, *, seed: int, quick: bool, size: int,
                failures: FailureSet | None = None) -> tuple[list, list[dict]]:
    """Every case of one photo scored by every stage in two batches (own references; pasted ones): (cases, rows)."""
    shots = photos[photo.product]
    made = failures or failure_set("benchmark")
    cases = cases_for(photo, photos, seed, composites=QUICK["composites"] if quick else 2,
                      integration=QUICK["integration"] if quick else None, size=size, failures=made.identity,
                      faults=made.integration, needs_photo=made.needs_photo)
    contexts = {False: context_for(shots, photo.view, photo.product), True: context_for(shots, None, photo.product)}
    scored = {key: [0.0] * len(cases) for key in stages}
    for pasted, context in contexts.items():
        idx = [i for i, c in enumerate(cases) if (c.group in PASTED) == pasted]
        for key, stage in stages.items():
            start = time.perf_counter()
            values = stage.score([cases[i].candidate for i in idx], context) if idx else []
            seconds[key] += time.perf_counter() - start
            for i, v in zip(idx, values):
                scored[key][i] = float(v)
    rows = [{"product": photo.product, "view": photo.view, "group": c.group, "kind": c.kind,
             "scores": {key: values[i] for key, values in scored.items()}} for i, c in enumerate(cases)]
    return cases, rows


def scorer_specs(recipe: str | Path | None, scorers: Sequence[str] | None) -> tuple[Path | None, list[Weighted], list[Weighted]]:
    """(recipe path, the recipe's weighted scorers, the extra unweighted ones) for a run."""
    recipe_path = Path(recipe) if recipe else default_recipe()
    if recipe is not None and not recipe_path.is_file():
        raise UsageError(f"--recipe {recipe}: no such file")
    weighted = recipe_scorers(recipe_path) if recipe_path else []
    extra = [Weighted(n, n, {}, 0.0) for n in (DEFAULT_SCORERS if scorers is None else scorers)
             if n not in {w.key for w in weighted}]
    return recipe_path, weighted, extra


def run_fidelity(out_dir: str | Path, scorers: Sequence[str] | None = None, products: Sequence[str] | None = None, *,
                 recipe: str | Path | None = None, quick: bool = False, views: int = 6, models: dict[str, str] | None = None,
                 tiny: bool = False, size: int = 256, seed: int = 0, device: str = "cpu", masks: str = "boxes",
                 failures: str = "benchmark", command: str = "") -> dict:
    """Score every case of every chosen product; write fidelity.json and contact-sheet.png, return the result."""
    out = Path(out_dir)
    models = dict(models or {})
    unknown = sorted(set(models) - set(MODEL_SCORERS))
    if unknown:
        raise UsageError(f"--model given for {', '.join(unknown)}, which take no model path",
                         hint=f"model scorers: {', '.join(MODEL_SCORERS)}")
    made = failure_set(failures)
    recipe_path, weighted, extra = scorer_specs(recipe, scorers)
    names = list(products or (QUICK["products"] if quick else DREAMBENCH))
    photos = {name: load_photos(name, size, masks) for name in names}  # bad input fails before any model loads
    random_models = set()
    if tiny:
        for name, path in tiny_models(out / "tiny-models").items():
            if name not in models:
                models[name], _ = path, random_models.add(name)
    stages, skipped = make_scorers(weighted + extra, models, device)
    rows, seconds, sheet = [], dict.fromkeys(stages, 0.0), []
    for name, shots in photos.items():
        for photo in shots[:1 if quick else views]:
            cases, photo_rows = score_photo(photo, photos, stages, seconds, seed=seed, quick=quick, size=size,
                                            failures=made)
            rows += photo_rows
            if not sheet:
                sheet = [(c, r["scores"]) for c, r in zip(cases, photo_rows)]
                sheet_context = context_for(shots, photo.view, name)
    weights = {w.key: w.weight for w in weighted if w.key in stages}
    result = summarise(rows, stages, skipped, seconds, weights, random_models, recipe_threshold(recipe_path))
    result.update(command=command, seed=seed, image_size=size, masks=masks, quick=quick, failures=failures,
                  recipe=str(recipe_path) if recipe_path else None,
                  recipe_missing=[w.key for w in weighted if w.key not in stages],
                  photos={name: [{"view": p.view, "source": p.reference.source, "mask": p.mask_method,
                                  "mask_area": round(p.mask.area, 4)} for p in shots] for name, shots in photos.items()})
    out.mkdir(parents=True, exist_ok=True)
    if sheet:
        contact_sheet(sheet_context, sheet, weights, out / "contact-sheet.png")
    result["scores"] = rows
    (out / "fidelity.json").write_text(json.dumps(result, indent=2))
    return result
