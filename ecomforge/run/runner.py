"""The runner: per product acquire → mask → generate (sweep × seeds) → score → filter → run folder."""
from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import EcomforgeError, HookError, InputError, StageError, UsageError
from ..plugins import Registry, get_registry
from ..recipe.load import ResolvedRecipe
from ..stages import Acquirer, Executor, Filter, GenerationJob, Generator, Masker, Scorer, StageConfig
from ..types import Candidate, Decision, GenerationRequest, Mask, Reference, Scored, ScoringContext
from . import cancel
from .checks import check_decisions, check_scores
from .context import RunContext
from .hooks import RunHooks
from .ids import candidate_id, mask_sha256
from .pipeline_runner import run_products
from .resume import stored_recipe_for
from .store import RunStore, new_run_id
from .work import ProductWork, RunResult

__all__ = ["ProductWork", "RunResult", "Runner", "run_recipe"]

log = logging.getLogger("ecomforge")
_PER_PRODUCT_STAGES = 32  # stages built for products' own configs, kept for reuse (weights are in the model cache)
STEPS = ("acquire", "mask", "generate", "score", "filter")


class Runner:
    """Runs one resolved recipe into one run folder; stages are built once and reused per product."""

    def __init__(self, resolved: ResolvedRecipe, *, registry: Registry | None = None, device: str = "auto",
                 executor: str | None = None, observers: Sequence[Any] = (), fail_fast: bool = False) -> None:
        self.resolved = resolved
        self.fail_fast = fail_fast  # stop at the first product that fails instead of recording it
        self.registry = registry or get_registry()
        self.device = device
        self.observers = list(observers)
        self._refs_sha: dict[str, list[str]] = {}
        # (step, config json) -> a stage for a product's own config; the most recently used few are kept
        self._per_product: OrderedDict[tuple[str, str], Any] = OrderedDict()
        r, cfg = resolved.recipe, resolved.configs
        create = self.registry.create
        # Each stage knows its recipe key path, so its errors (a missing model in check()) name the key to fix.
        self.acquirer: Acquirer = create("acquirer", r.acquire.plugin, cfg["acquire"], device=device,
                                         path="acquire.config")
        self.masker: Masker = create("masker", r.mask.plugin, cfg["mask"], device=device, path="mask.config")
        self.generator: Generator = create("generator", r.generate.plugin, cfg["generate"], device=device,
                                           path="generate.config")
        self.scorers: list[tuple[str, float, Scorer]] = [
            (s.key, s.weight, create("scorer", s.plugin, cfg[f"score.{i}"], device=device, path=f"score.{i}.config"))
            for i, s in enumerate(r.score)]
        # (key path, plugin, stage) per filter, applied in order; one entry for a single ``filter:``
        self.filters: list[tuple[str, str, Filter]] = [
            (key, f.plugin, create("filter", f.plugin, cfg[key], device=device, path=f"{key}.config"))
            for key, f in r.filter_steps()]
        exec_name = executor or r.execute.plugin
        exec_cfg: StageConfig | dict[str, Any] = cfg["execute"] if exec_name == r.execute.plugin else {}
        self.executor: Executor = create("executor", exec_name, exec_cfg, device=device, path="execute.config")
        self.executor.attach(registry=self.registry, generator=self.generator)  # one generator per run
        self.hooks: Any = RunHooks(self.registry.pm, [])  # every hook call goes through this; run() scopes it
        for stage in (self.acquirer, self.masker, self.generator, *(f for _, _, f in self.filters),
                      *(s for _, _, s in self.scorers)):
            stage.base_dir = resolved.base_dir  # where relative paths in a stage's config resolve

    # --- public entry -----------------------------------------------------------------------
    def run(self, *, out: Path | None = None, resume: Path | None = None) -> RunResult:
        """Run into a new folder under ``out``, or finish the run folder ``resume``."""
        recipe = self.resolved.recipe
        self.check()
        RunHooks(self.registry.pm, self.observers)  # a misspelt observer hook fails before a run folder is made
        if resume is not None:
            store = RunStore.open(resume)
            run_id = store.root.name
        else:
            run_id = new_run_id(recipe.name)
            store = RunStore.create(Path(out or recipe.output.dir), run_id, self.resolved.to_dict())
        ctx = RunContext(run_id=run_id, dir=store.root, resolved=self.resolved, device=self.device,
                         resumed=resume is not None, products=list(self.resolved.products))
        # This run's own hook scope: its store and observers see its events only (never another run's).
        self.hooks = hooks = RunHooks(self.registry.pm, [store, *self.observers])
        self._store = store
        try:
            hooks.on_run_start(run=ctx)
            counts = {"candidates": 0, "kept": 0, "failed": 0}
            todo = []
            for product, specs in self.resolved.products.items():
                if store.product_done(product):
                    self._advance_overall(ctx, product)
                else:
                    todo.append((product, specs))
            # products overlap: the next ones are masked and the last one scored while one generates
            try:
                for rec in (r for records in run_products(self, ctx, store, todo) for r in records):
                    counts["candidates"] += 1
                    counts["kept"] += int(rec["kept"])
                    counts["failed"] += int(bool(rec.get("failed")))
            except StageError as exc:
                hook_error = _root_hook_error(exc)
                if hook_error is not None:
                    raise hook_error from hook_error.__cause__  # the run store's failure, not the stage's
                raise
            records = list(store.records)
            summary = {**counts, "run_id": run_id, "seconds": round(time.time() - ctx.started, 3),
                       "stage_seconds": {k: round(v, 4) for k, v in ctx.stage_seconds.items()},
                       "total_candidates": len(records), "total_kept": sum(bool(r["kept"]) for r in records),
                       "failed_products": list(store.failures.values()), "hook_warnings": hooks.warnings}
            hooks.on_run_end(run=ctx, summary=summary)
            return RunResult(store.root, records, summary)
        except BaseException as exc:
            hooks.on_run_error(run=ctx, error=exc)
            if resume is None and getattr(exc, "exit_code", 1) == 2:
                store.discard_if_empty()  # bad input on a fresh run: leave no empty run folder behind
            raise
        finally:
            self.executor.close()

    def check(self) -> None:
        """Every stage confirms its model files are there before a run folder or any work is made (cheap: no
        weights load); the first that is not ready raises its StageError."""
        for error in self.readiness(first=True):
            raise error

    def readiness(self, *, first: bool = False) -> list[StageError]:
        """What each stage says stops it running here (missing weights, no such device), in recipe order;
        ``first``: stop at the first. `ecomforge validate` lists them all."""
        r = self.resolved.recipe
        steps = [("acquire", r.acquire.plugin, self.acquirer), ("mask", r.mask.plugin, self.masker),
                 ("generate", r.generate.plugin, self.generator), *(("filter", p, f) for _, p, f in self.filters),
                 *(("score", s.plugin, stage) for s, (_, _, stage) in zip(r.score, self.scorers))]
        errors = []
        for step, plugin, stage in steps:
            try:
                stage.check()
            except Exception as exc:
                error = StageError(step, plugin, "*", exc)
                error.__cause__ = exc
                errors.append(error)
                if first:
                    break
        return errors

    def _advance_overall(self, ctx: RunContext, product: str) -> None:
        for step in STEPS:
            self.hooks.on_step_start(run=ctx, step=step, product=product, total=0)
            self.hooks.on_step_end(run=ctx, step=step, product=product, seconds=0.0)

    @contextmanager
    def _step(self, ctx: RunContext, step: str, plugin: str, product: str, total: int) -> Iterator[dict[str, float]]:
        hook = self.hooks
        cancel.check()  # a cancelled run begins no further step
        hook.on_step_start(run=ctx, step=step, product=product, total=total)
        timer = {"inside": 0.0}
        try:
            yield timer
        except HookError:
            raise  # a hook's failure is its plugin's, never the stage's
        except StageError as exc:
            hook.on_step_error(run=ctx, step=step, product=product, error=exc)
            raise
        except Exception as exc:
            hook.on_step_error(run=ctx, step=step, product=product, error=exc)
            raise StageError(step, plugin, product, exc) from exc
        ctx.add_time(step, timer["inside"])
        hook.on_step_end(run=ctx, step=step, product=product, seconds=timer["inside"])

    def _advance(self, ctx: RunContext, step: str, product: str, n: int = 1) -> None:
        self.hooks.on_step_advance(run=ctx, step=step, product=product, advance=n)
        cancel.check()  # between references, scorers, filters and jobs (helper threads too)

    # --- one product: each step reads a ProductWork and fills in its part (pipeline_runner calls them) --
    def _acquire_and_mask(self, ctx: RunContext, work: ProductWork) -> None:
        """Acquire the product's references, then mask each one."""
        recipe, hook, product = self.resolved.recipe, self.hooks, work.product
        with self._step(ctx, "acquire", recipe.acquire.plugin, product, 1) as t:
            t0 = time.perf_counter()
            acquirer = self._stage("acquire", work, self.acquirer)
            acquirer.ensure_setup()
            refs = acquirer.acquire(work.plan.references, product=product, base_dir=self.resolved.base_dir)
            t["inside"] = work.timings["acquire"] = time.perf_counter() - t0
            if not refs:
                raise UsageError(f"product '{product}': no reference images found in {work.plan.references}")
            hook.on_references(run=ctx, product=product, references=refs)
            self._advance(ctx, "acquire", product)
        work.refs = refs

        with self._step(ctx, "mask", recipe.mask.plugin, product, len(refs)) as t:
            masker = self._stage("mask", work, self.masker)
            masker.ensure_setup()
            for ref in refs:
                t0 = time.perf_counter()
                mask = masker.mask(ref)
                t["inside"] += time.perf_counter() - t0
                if mask.data.shape != ref.image.shape[:2]:
                    raise UsageError(f"mask of {ref.source} is {mask.data.shape[::-1]}, image is {ref.size}")
                work.masks.append(mask)
                hook.on_mask(run=ctx, product=product, reference=ref, mask=mask)
                self._advance(ctx, "mask", product)
            work.timings["mask"] = t["inside"]
        self._refs_sha[product] = sorted({r.sha256 for r in refs})

    def _score(self, ctx: RunContext, work: ProductWork) -> None:
        """Every scorer over all of the product's good candidates at once (so scorers batch).

        A scorer that fails (or breaks its contract) is the product's failure under its own name.
        """
        recipe, product = self.resolved.recipe, work.product
        ok = work.ok()
        work.scores = {cid: {} for cid in work.order()}
        work.reasons = {cid: {} for cid in work.order()}
        context = ScoringContext(tuple(work.refs), tuple(work.masks), work.plan.prompt)
        with self._step(ctx, "score", ",".join(s.plugin for s in recipe.score) or "-", product,
                        len(ok) * len(self.scorers)) as t:
            for i, (entry, (key, _, scorer)) in enumerate(zip(recipe.score, self.scorers)):
                plugin = entry.plugin
                try:
                    scorer = self._stage(f"score.{i}", work, scorer)
                    t0 = time.perf_counter()
                    scorer.ensure_setup()
                    values = scorer.score([work.cands[cid] for cid in ok], context)
                    t["inside"] += time.perf_counter() - t0
                    self._take_scores(work, plugin, key, ok, values)
                except Exception as exc:
                    raise StageError("score", plugin, product, exc) from exc
                self._advance(ctx, "score", product, len(ok))
            work.timings["score"] = t["inside"]

    @staticmethod
    def _take_scores(work: ProductWork, plugin: str, key: str, ok: list[str], values: Sequence[Any]) -> None:
        """Check one scorer's values and record them (and their reasons) per candidate."""
        for cid, (value, reason) in zip(ok, check_scores(plugin, values, len(ok), key=key)):
            work.scores[cid][key] = value
            if reason:
                work.reasons[cid][key] = reason

    def _filter(self, ctx: RunContext, work: ProductWork) -> None:
        """The filters decide, in order, which scored candidates are kept; each sees only what the last kept."""
        scored = [Scored(cid, work.cands[cid], work.scores[cid], self._total(work.scores[cid]), work.reasons[cid])
                  for cid in work.ok()]
        chain = len(self.filters) > 1
        said: dict[str, list[str]] = {s.id: [] for s in scored}  # every step's reason, in order
        with self._step(ctx, "filter", "+".join(p for _, p, _ in self.filters), work.product, len(self.filters)) as t:
            t0 = time.perf_counter()
            for key, plugin, default in self.filters:
                try:
                    decisions = check_decisions(plugin, self._stage(key, work, default).select(scored) if scored
                                                else [], len(scored))
                except Exception as exc:
                    raise StageError("filter", plugin, work.product, exc) from exc
                for s, d in zip(scored, decisions):
                    said[s.id].append(f"{plugin}: {d.reason}" if chain else d.reason)
                    if not d.kept:
                        work.verdict[s.id] = Decision(False, "; ".join(said[s.id]))
                scored = [s for s, d in zip(scored, decisions) if d.kept]
                self._advance(ctx, "filter", work.product)
            t["inside"] = work.timings["filter"] = time.perf_counter() - t0
        work.verdict.update({s.id: Decision(True, "; ".join(said[s.id])) for s in scored})

    def _records(self, ctx: RunContext, work: ProductWork) -> list[dict[str, Any]]:
        """The product's final manifest records, in job order."""
        order, timings = work.order(), work.timings
        n = max(1, len(order))
        stage_models = self._identities(work)
        records = []
        for cid in order:
            cand, m = work.cands[cid], work.meta[cid]
            rec = self._base_record(work.product, m["job"], cid, cand)
            d = work.verdict.get(cid)
            rec.update({
                "scores": work.scores[cid],
                "score_reasons": work.reasons[cid],
                "total": round(self._total(work.scores[cid]), 6) if not cand.failed else None,
                "kept": bool(d and d.kept),
                "reason": d.reason if d else f"failed: {cand.failed}",
                "selected": f"selected/{cid}.png" if d and d.kept else None,
                "product_candidates": len(order),
                "stage_models": stage_models,
                "timings": {"acquire": timings["acquire"] / n, "mask": timings["mask"] / n,
                            "generate": m["generate_s"], "score": timings["score"] / n,
                            "filter": timings["filter"] / n, "io": ctx.extra.get("io", {}).get(cid, 0.0)},
            })
            records.append(rec)
        return records

    def _stage(self, step: str, work: ProductWork, default: Any) -> Any:
        """The step's stage for this product: the run's own, or one built for the product's catalogue config."""
        config = work.plan.configs.get(step)
        if config is None:
            return default
        key = (step, config.model_dump_json())
        stage = self._per_product.get(key)
        if stage is not None:
            self._per_product.move_to_end(key)
        if stage is None:  # constructors are cheap; weights are shared through the model cache
            stage = self._per_product[key] = type(default)(config, device=self.device, path=f"{step}.config")
            if len(self._per_product) > _PER_PRODUCT_STAGES:  # a 10 000-product catalogue: bounded memory
                self._per_product.popitem(last=False)
            stage.base_dir = self.resolved.base_dir
        return stage

    def _product_failed(self, ctx: RunContext, work: ProductWork, exc: BaseException) -> list[dict[str, Any]]:
        """Record a product that failed (manifest, failed.csv) and go on; re-raise when fail-fast or not a stage's."""
        cause = getattr(exc, "cause", None) or exc.__cause__
        if isinstance(cause, HookError):
            raise cause  # a fatal hook (the run store) stops the run; it is never the stage's failure
        # One product has nothing to go on with: its error is the run's (exit 2 for bad input, as always).
        alone = len(self.resolved.products) <= 1
        if self.fail_fast or alone or isinstance(exc, HookError) or not isinstance(exc, EcomforgeError):
            raise exc  # the CLI shows its traceback under --verbose
        log.debug("product %r failed", work.product, exc_info=exc)  # the traceback of one the run goes on after
        step, plugin = getattr(exc, "step", "?"), getattr(exc, "plugin", "?")
        self._store.record_failure(work.product, step, plugin, exc.one_line())
        return []

    def _identities(self, work: ProductWork) -> dict[str, dict[str, str]]:
        """Model ids of the stages that made and judged this product's candidates (Stage.identity())."""
        stages = {"mask": self._stage("mask", work, self.masker), "generate": self.generator,
                  **{f"score.{key}": self._stage(f"score.{i}", work, st) for i, (key, _, st) in enumerate(self.scorers)}}
        out = {}
        for step, stage in stages.items():
            if not hasattr(stage, "_ecomforge_identity"):  # asked once per stage instance
                stage._ecomforge_identity = dict(stage.identity() or {})
            if stage._ecomforge_identity:
                out[step] = stage._ecomforge_identity
        return out

    def _total(self, scores: dict[str, float]) -> float:
        weights = [(w, scores[k]) for k, w, _ in self.scorers if k in scores]
        wsum = sum(w for w, _ in weights)
        return sum(w * v for w, v in weights) / wsum if wsum > 0 else 1.0

    def _plan_jobs(self, product: str, refs: list[Reference], masks: list[Mask]) -> list[GenerationJob]:
        """One job per (reference, sweep point, seed batch), each with its candidate ids."""
        gen = self.resolved.recipe.generate
        plan = self.resolved.products[product]
        base = plan.raw.get("generate", gen.config)  # the product's own generate.config (catalogue, templates)
        cls = type(self.generator)
        seeds = gen.seed_list()
        pairs = list(zip(refs, masks))
        if gen.sources == "first":
            pairs = pairs[:1]
        jobs = []
        made: dict[str, dict[str, Any]] = {}
        for n, (ref, mask) in enumerate(pairs):
            msha = mask_sha256(mask.data, mask.dilate, mask.feather)
            for point in self.resolved.grid:
                config = cls.Config.model_validate({**base, **point})
                params = self.generator.describe(config)
                key = f"{n}:{json.dumps(params, sort_keys=True, default=str)}"
                if made.setdefault(key, point) is not point:  # one image twice under one id
                    raise InputError(f"generate.sweep: sweep points {made[key]} and {point} make the same image for "
                                     f"product '{product}' (its generator describes them alike); list each value once")
                for start in range(0, len(seeds), gen.batch_size):
                    cancel.check()  # a large sweep takes a while to plan: a cancel lands here too
                    batch = tuple(seeds[start:start + gen.batch_size])
                    ids = tuple(candidate_id(product=product, reference_sha256=ref.sha256, mask_sha256=msha,
                                             plugin=gen.plugin, params=params, seed=s, prompt=plan.prompt,
                                             negative_prompt=plan.negative_prompt) for s in batch)
                    request = GenerationRequest(ref, mask, plan.prompt, plan.negative_prompt, config, batch)
                    jobs.append(GenerationJob(ids[0], product, request, ids))
        return jobs

    def _base_record(self, product: str, job: GenerationJob, cid: str, cand: Candidate) -> dict[str, Any]:
        req = job.request
        refs_sha = self._refs_sha.get(product, [req.reference.sha256])
        return {
            "id": cid, "product": product, "reference": req.reference.name,
            "reference_sha256": req.reference.sha256, "references_sha256": refs_sha,
            "mask": f"masks/{product}/{req.reference.name}.png", "plugin": self.resolved.recipe.generate.plugin,
            "models": cand.models, "params": cand.params, "seed": cand.seed,
            "prompt": req.prompt, "negative_prompt": req.negative_prompt,
            "image": f"candidates/{cid}.png", "failed": cand.failed, "info": cand.info,
        }


def _root_hook_error(exc: BaseException) -> BaseException | None:
    """The HookError a StageError wraps (at any depth), or None."""
    node: BaseException | None = exc
    for _ in range(8):  # causes are chained a few deep at most; never loop on a cycle
        if node is None or isinstance(node, HookError):
            return node
        node = getattr(node, "cause", None) or node.__cause__
    return None


def run_recipe(resolved: ResolvedRecipe, *, out: Path | None = None, resume: Path | None = None,
               device: str = "auto", executor: str | None = None, registry: Registry | None = None,
               observers: Sequence[Any] = (), fail_fast: bool = False) -> RunResult:
    """Run a resolved recipe (or resume a run folder) and return its records; failed products are recorded."""
    if resume is not None:
        resolved = stored_recipe_for(resolved, resume, registry)
    runner = Runner(resolved, registry=registry, device=device, executor=executor, observers=observers,
                    fail_fast=fail_fast)
    return runner.run(out=out, resume=resume)
