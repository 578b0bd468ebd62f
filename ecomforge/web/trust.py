"""What a web request may name: one check, run for every job, over every path- and URL-valued setting.

Every stage declares its path settings with a field kind from ``ecomforge.pathspec``; this module walks
a job's resolved recipe — each step's validated config and every sweep value — by those kinds, and
allows only the job's own uploads, what the chosen preset itself names, files in the presets folder
and the models the operator allow-listed. A refusal reads the same whether the file exists or not.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..imaging.maskfile import neutral_fill, parse_pattern
from ..pathspec import FoundPath, walk, walk_config

URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*:|//|\\\\)")
DEFAULT_MAX_IMAGE_BYTES = 50 * 1024 * 1024


class PathRefused(InputError):
    """A request named a file, folder, model or URL it may not (HTTP 403)."""


@dataclass(frozen=True)
class PathPolicy:
    """What the operator lets requests name besides their own uploads and the presets."""

    models: tuple[str, ...] = ()  # model ids (exact) or local folders/files (anything inside them)
    allow_urls: bool = False  # only where a stage's field accepts URLs at all
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES  # an image a setting names is size-checked before it is read
    _folders: tuple[Path, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        folders = tuple(Path(os.path.realpath(os.path.expanduser(m))) for m in self.models
                        if os.path.isabs(os.path.expanduser(m)))
        object.__setattr__(self, "_folders", folders)

    def model_allowed(self, value: str) -> bool:
        """An allow-listed id, or a path that resolves inside an allow-listed folder or file."""
        if value in self.models:
            return True
        if not os.path.isabs(value) or _has_parent_part(value):
            return False
        real = Path(os.path.realpath(value))
        return any(real == f or real.is_relative_to(f) for f in self._folders)


def recipe_paths(resolved: Any) -> Iterator[FoundPath]:
    """Every path-valued setting a resolved recipe was given: step configs and each sweep value."""
    from ..plugins import get_registry

    for step, config in resolved.configs.items():
        yield from walk_config(config, f"{step}.config")
    gen = resolved.recipe.generate
    model = get_registry().get("generator", gen.plugin).cls.Config
    for key, values in gen.sweep.items():
        info = model.model_fields.get(key)
        if info is None:
            continue
        from typing import Annotated

        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        default = info.get_default(call_default_factory=True)
        for i, value in enumerate(values):
            for found in walk(annotation, value, f"generate.sweep.{key}.{i}"):
                yield replace(found, default=True) if value == default else found


def preset_values(resolved: Any | None) -> set[str]:
    """The path values a preset itself names: the operator wrote them, so a job from that preset may use them."""
    if resolved is None:
        return set()
    return {f.value for f in recipe_paths(resolved) if not f.default}


def pattern_roots(resolved: Any, trusted: Iterable[str]) -> list[str]:
    """Where the preset's own mask patterns point, for the run-time check of each filled-in path.

    The fixed folder before the first placeholder, or the file itself when there is none; never ``/``
    (a pattern that starts with a placeholder names no folder).
    """
    trusted = set(trusted)
    roots = {pattern_root(found.value) for found in recipe_paths(resolved)
             if found.field.pattern and found.value in trusted}
    return sorted(r for r in roots if r is not None)


def pattern_root(pattern: str) -> str | None:
    """The real folder a mask pattern's fixed start names (the file itself without a placeholder), or None.

    None for a pattern that is not absolute, that climbs (``..``), that starts with a placeholder (it names
    no folder), or whose folder is ``/``.
    """
    try:
        parts = parse_pattern(pattern)
    except InputError:
        return None  # refused when the run fills it in
    fixed = ""
    for kind, text in parts:
        if kind == "field":
            fixed = fixed[:max(fixed.rfind("/"), fixed.rfind("\\")) + 1]
            break
        fixed += text
    fixed = os.path.expanduser(fixed) if fixed.startswith("~") else fixed
    if os.path.isabs(fixed) and not _has_parent_part(fixed) and "\x00" not in fixed:
        real = os.path.realpath(fixed)
        if real != os.path.realpath("/"):
            return real
    return None


def check_job_paths(resolved: Any, *, job_dir: Path, presets_dir: Path, policy: PathPolicy,
                    trusted: Iterable[str] = ()) -> None:
    """Refuse the job if any path- or URL-valued setting names something this request may not."""
    trusted = set(trusted)
    uploads = Path(os.path.realpath(job_dir / "uploads"))
    presets = Path(os.path.realpath(presets_dir))
    for found in recipe_paths(resolved):
        _check_one(found, trusted=trusted, uploads=uploads, presets=presets, job_dir=job_dir, policy=policy)


def _check_one(found: FoundPath, *, trusted: set[str], uploads: Path, presets: Path, job_dir: Path,
               policy: PathPolicy) -> None:
    value, kind = found.value, found.field.kind
    if value in trusted or value == "" or found.field.is_literal(value):
        return
    if found.default and kind == "model":
        return  # a plugin's own default model: the operator installed that plugin
    # A default file path is no exception: a relative one would be looked up in the server's folder.
    if URL.match(value.strip()) and not os.path.isabs(value):
        if policy.allow_urls and found.field.urls and value.lower().startswith(("https://", "http://")):
            return
        raise PathRefused(f"{found.loc}: URLs are not allowed here (the server's operator has not enabled them)")
    if kind == "model":
        if policy.model_allowed(value):
            return
        raise PathRefused(f"{found.loc}: model {_shown(value)} is not one this server offers "
                          "(the presets' models and those the operator allow-listed)")
    if kind == "output":
        if _inside(value, [Path(os.path.realpath(job_dir))], pattern=False):
            return
        raise PathRefused(f"{found.loc}: a request may only write inside its own job folder")
    roots = [uploads, presets] if kind == "image" else [uploads]
    _check_pattern(found)
    real = _inside(value, roots, pattern=found.field.pattern)
    if real is None:
        raise PathRefused(f"{found.loc}: {_shown(value)} is not a file this request may name "
                          "(its own uploads or the server's presets)")
    if kind == "image" and real.is_file() and real.stat().st_size > policy.max_image_bytes:
        from .uploads import TooLarge

        raise TooLarge(f"{found.loc}: the image is over the limit of {policy.max_image_bytes} bytes")


def _check_pattern(found: FoundPath) -> None:
    """A pattern setting read by the run-time filler's own parser: what passes here means the same there."""
    if found.field.pattern:
        try:
            parse_pattern(found.value)
        except InputError as exc:
            raise InputError(f"{found.loc}: {exc.one_line()}") from exc


def _inside(value: str, roots: list[Path], *, pattern: bool) -> Path | None:
    """The real path ``value`` names, if it is absolute and stays inside one of ``roots`` (links followed).

    A pattern is judged as the run-time filler reads it (placeholders exactly, braces escaped); the job
    worker checks each filled path again (``maskfile.confine``), so this check is never the only one.
    """
    if pattern:
        try:
            text = neutral_fill(value)
        except InputError:
            return None
    else:
        text = value
    if "\x00" in text or not os.path.isabs(text) or _has_parent_part(text):
        return None
    real = Path(os.path.realpath(text))
    return real if any(real == r or real.is_relative_to(r) for r in roots) else None


def _has_parent_part(text: str) -> bool:
    return any(part == ".." for part in re.split(r"[\\/]", text))


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def count_candidates(data: dict[str, Any], references: int) -> tuple[int, int, int]:
    """(sweep points, seeds, candidates) a raw job recipe asks for, computed without building anything."""
    raw_gen = data.get("generate")
    gen: dict[str, Any] = raw_gen if isinstance(raw_gen, dict) else {}
    raw_sweep = gen.get("sweep")
    sweep: dict[str, Any] = raw_sweep if isinstance(raw_sweep, dict) else {}
    points: int = math.prod(len(v) if isinstance(v, list) else 1 for v in sweep.values())
    seeds = gen.get("seeds", [0])
    if isinstance(seeds, dict):
        count = seeds.get("count", 1)
        n_seeds = count if isinstance(count, int) and not isinstance(count, bool) else 1
    else:
        n_seeds = len(seeds) if isinstance(seeds, list) else 1
    sources = 1 if gen.get("sources") == "first" else max(1, references)
    return points, n_seeds, points * n_seeds * sources
