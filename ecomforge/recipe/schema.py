"""The recipe schema (pydantic): every key described, unknown keys rejected."""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Step(_Strict):
    """A stage: which plugin, and its config (validated against the plugin's own Config)."""

    plugin: str = Field(description="Name of the plugin that runs this step.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="The plugin's settings; see `ecomforge plugins`. A setting that is an amount "
                                          "of work (declared by its plugin with `Field(..., json_schema_extra="
                                          "{\"work\": True})`, from `ecomforge.pathspec.WORK`; e.g. the classic "
                                          "masker's `working_size`) may be lowered by a catalogue column, never raised.")


class SeedRange(_Strict):
    """``count`` consecutive seeds starting at ``base``."""

    count: int = Field(ge=1, le=100_000, description="How many seeds.")
    base: int = Field(default=0, ge=0, description="The first seed.")


# What looks like a placeholder but is none: '{title on a table' (never closed) or '{product!r}', '{product:>9}',
# '{product.name}' (str.format syntax, which templates do not take). '{a b}' and '{}' stay text as written.
_BROKEN_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?:[!:.\[][^{}]*\}?|[^{}]*$|[^{}]*(?=\{))")


class Inputs(_Strict):
    """What to generate from: references for one product (or several products) and the prompts."""

    references: list[str] | None = Field(
        default=None, description="Files, folders, globs or http(s) URLs of one product's photos.")
    products: dict[str, list[str]] | None = Field(
        default=None, description="Several products: name -> references. Use instead of `references`.")
    catalog: str | None = Field(
        default=None, description="A catalogue instead of `references`/`products`: a CSV or JSONL file (`product` "
                                  "and `references` columns), a Shopify or WooCommerce product export, or a folder "
                                  "whose sub-folders are products. Its columns are template variables "
                                  "(`{title}`) and may override recipe keys per product, but never `acquire.*`, a setting above "
                                  "the recipe's when it is an amount of work, or a generator setting that makes a "
                                  "candidate more pixels than the recipe's; see docs/catalogues.md.")
    max_references: int = Field(
        default=64, ge=1, le=10_000, description="Most references one product may have (files a folder or glob "
                                                 "names count one each), checked before any is read.")
    prompt: str = Field(default="", description="What the new images should show (may use `{variables}`).")
    negative_prompt: str = Field(default="", description="What they should not show.")

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _template(cls, text: str) -> str:
        bad = _BROKEN_PLACEHOLDER.search(text.replace("{{", "  ").replace("}}", "  "))
        if bad:
            shown = bad.group(0)[:40]
            raise ValueError(f"{shown!r} is not a template variable: write {{name}} (a letter or '_', then letters, "
                             "digits or '_', then '}'), or {{ and }} for literal braces")
        return text

    @model_validator(mode="after")
    def _one_source(self) -> "Inputs":
        if sum(x is not None for x in (self.references, self.products, self.catalog)) != 1:
            raise ValueError("give exactly one of 'references', 'products' or 'catalog'")
        if self.catalog is not None and not self.catalog.strip():
            raise ValueError("'catalog' is empty: name a CSV/JSONL file, a product export or a folder")
        if self.references is not None and not self.references:
            raise ValueError("'references' is empty: name at least one file, folder, glob or URL")
        if any(not s.strip() for s in self.references or []):
            raise ValueError("'references' holds an empty entry (it would name the current folder)")
        for name, refs in (self.products or {}).items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}", name):
                raise ValueError(f"product name {name!r} must be 1-200 ASCII letters, digits, '.', '_' or '-', "
                                 "starting with a letter or digit")
            if not refs:
                raise ValueError(f"product {name!r} has no references")
            if any(not s.strip() for s in refs):
                raise ValueError(f"product {name!r} has an empty reference (it would name the current folder)")
        return self


class Generate(Step):
    """The generator, the parameter grid it sweeps and the seeds."""

    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="Config keys -> values to try; the full grid runs in a fixed order.")
    seeds: list[int] | SeedRange = Field(default_factory=lambda: [0], description="Seeds, or {count, base}.")
    sources: Literal["all", "first"] = Field(
        default="all", description="Generate from every reference of a product, or only the first.")
    batch_size: int = Field(default=4, ge=1, le=256, description="Seeds per generator call (batched).")

    @field_validator("sweep")
    @classmethod
    def _non_empty(cls, sweep: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in sweep.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"sweep '{key}' needs a non-empty list of values")
        return sweep

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int] | SeedRange) -> list[int] | SeedRange:
        if isinstance(seeds, list):
            if not seeds:
                raise ValueError("seeds is empty")
            if len(set(seeds)) != len(seeds):
                raise ValueError("seeds repeat")
            if any(s < 0 or s >= 2**63 for s in seeds):
                raise ValueError("seeds must be in [0, 2^63)")
        elif seeds.base + seeds.count > 2**63:  # a range is held to what a list is
            raise ValueError("seeds must be in [0, 2^63): base + count is past it")
        return seeds

    def seed_list(self) -> list[int]:
        """The seeds as a list."""
        if isinstance(self.seeds, SeedRange):
            return list(range(self.seeds.base, self.seeds.base + self.seeds.count))
        return list(self.seeds)


class Score(Step):
    """One scorer and its weight in the combined score."""

    weight: float = Field(default=1.0, ge=0.0, le=1000.0, description="Weight in the combined score.")
    name: str | None = Field(default=None, description="Name of this score (defaults to the plugin name).")

    @property
    def key(self) -> str:
        """The name scores are recorded under."""
        return self.name or self.plugin


class Output(_Strict):
    """Where run folders go."""

    dir: str = Field(default="runs", description="Parent folder of run folders.")
    report: bool = Field(default=True, description="Write report.html.")
    format: Literal["png", "jpeg", "webp"] = Field(
        default="png", description="File format of the selected images (candidates stay lossless PNG); JPEG and "
                                   "WebP carry an sRGB profile and the parameters in EXIF.")
    quality: int = Field(default=92, ge=1, le=100, description="JPEG/WebP quality of the selected images.")
    metadata: Literal["full", "minimal", "none"] = Field(
        default="full", description="What images say about their making: full (A1111 parameters, candidate id, "
                                    "ecomforge JSON), minimal (A1111's own fields), none. Never local paths.")


def _default_step(kind: str) -> Step:
    """The step a recipe gets when it leaves this kind out: the plugin that declares itself the default."""
    from ..plugins import get_registry

    return Step(plugin=get_registry().default(kind))


class Recipe(_Strict):
    """A whole run: inputs, then acquire → mask → generate → score → filter, then output."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Name of the recipe (used in run ids).")
    description: str = Field(default="", description="Free text.")
    inputs: Inputs = Field(description="References and prompts.")
    acquire: Step = Field(default_factory=lambda: _default_step("acquirer"),
                          description="Where references come from (default: the installed default acquirer).")
    mask: Step = Field(description="How the product region is found.")
    generate: Generate = Field(description="How new images are made.")
    score: list[Score] = Field(default_factory=list, description="Scorers; their weighted mean is the total.")
    filter: Step | list[Step] = Field(
        default_factory=lambda: _default_step("filter"),
        description="Which candidates to keep: one filter, or a list applied in order, each seeing only the "
                    "candidates the previous ones kept.")
    execute: Step = Field(default_factory=lambda: _default_step("executor"),
                          description="Where generation jobs run (default: the installed default executor).")
    output: Output = Field(default_factory=Output, description="Where the run folder goes.")
    plugins: dict[str, str] = Field(
        default_factory=dict, description="Plugin versions the recipe was run with (`kind:plugin` -> "
                                          "`distribution==version`), as a run folder's recipe.yaml records them; "
                                          "an installed version that differs is named in a warning.")

    @field_validator("filter")
    @classmethod
    def _filters(cls, value: Step | list[Step]) -> Step | list[Step]:
        if isinstance(value, list) and not value:
            raise ValueError("filter is an empty list: name at least one filter (or leave 'filter' out)")
        return value

    def filter_steps(self) -> list[tuple[str, Step]]:
        """(key path, step) of each filter in order: ``filter`` alone, or ``filter.0``, ``filter.1``, ..."""
        if isinstance(self.filter, list):
            return [(f"filter.{i}", step) for i, step in enumerate(self.filter)]
        return [("filter", self.filter)]

    @field_validator("score")
    @classmethod
    def _unique_scores(cls, score: list[Score]) -> list[Score]:
        keys = [s.key for s in score]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(f"two scorers are both named {sorted(dup)[0]!r}: give one a 'name'")
        return score

    def product_specs(self) -> dict[str, list[str]]:
        """Product name -> its reference specs."""
        if self.inputs.catalog is not None:
            raise ValueError("a catalogue's products are read by the loader: use ResolvedRecipe.products")
        if self.inputs.products is not None:
            return dict(self.inputs.products)
        return {self.name: list(self.inputs.references or [])}
