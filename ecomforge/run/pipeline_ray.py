"""Masking and scoring on Ray actors: one pool per stage, each actor holding its model loaded.

The runner keeps calling ``masker.mask(ref)`` and ``scorer.score(cands, context)``; with the Ray
executor those are these proxies, which send the call to the least busy actor of the stage's pool
and wait for it. Several products are prepared at once (one helper thread per mask actor), so
every actor of the pool has work; Ray places the actors (``num_gpus``) and queues their calls.
"""
from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..stages import GeneratorSpec

STAGE_CPUS = 0.25  # CPU slots a masking or scoring actor reserves (its work is on the GPU)


class StageWorker:
    """The actor body for a masker or scorer: builds the stage once and serves its calls."""

    def __init__(self, kind: str, plugin: str, config: dict[str, Any], device: str, plugins: list[str],
                 base_dir: str | None) -> None:
        from ..plugins import build_registry, get_registry

        self.registry = build_registry([importlib.import_module(m) for m in plugins]) if plugins else get_registry()
        self.kind, self.plugin, self.device, self.base_dir = kind, plugin, device, base_dir
        self.stages: dict[str, Any] = {}
        self.default = self._stage(config)
        self.default.ensure_setup()  # load weights now, before the first call

    def _stage(self, config: dict[str, Any] | None) -> Any:
        """The stage for a catalogue product's own config (built once per config; weights via the model cache)."""
        from .ids import canonical_json

        if config is None and self.stages:
            return self.default
        key = canonical_json(config or {})
        if key not in self.stages:
            stage = self.registry.create(self.kind, self.plugin, config or {}, device=self.device)
            stage.base_dir = Path(self.base_dir) if self.base_dir else None
            self.stages[key] = stage
        return self.stages[key]

    def mask(self, reference: Any, config: dict[str, Any] | None = None) -> Any:
        """One reference's mask."""
        stage = self._stage(config)
        stage.ensure_setup()
        return stage.mask(reference)

    def score(self, candidates: list[Any], context: Any, config: dict[str, Any] | None = None) -> list[Any]:
        """Scores of a batch of candidates (floats or Score)."""
        stage = self._stage(config)
        stage.ensure_setup()
        return list(stage.score(candidates, context))

    def identity(self, config: dict[str, Any] | None = None) -> dict[str, str]:
        """The stage's model ids, as the manifest records them."""
        return dict(self._stage(config).identity() or {})


class StagePool:
    """The actors of one stage; ``call`` runs a method on the least busy one, replacing dead actors."""

    def __init__(self, ray: Any, kind: str, spec: GeneratorSpec, *, n: int, options: dict[str, Any],
                 plugins: list[str], base_dir: Path | None, max_retries: int,
                 placement: Callable[[int], dict[str, Any]] = lambda slot: {}, offset: int = 0) -> None:
        self.ray, self.kind, self.spec, self.max_retries = ray, kind, spec, max_retries
        self._args = (kind, spec.plugin, spec.config, spec.device, plugins, str(base_dir) if base_dir else None)
        self._cls = ray.remote(StageWorker)
        self._options = lambda slot: {**options, **placement(offset + slot)}  # spread over the GPU bundles
        self.actors = [self._start(i) for i in range(max(1, n))]
        self.busy = [0] * len(self.actors)
        self._next = 0  # where the search for the least busy actor begins: ties go round the pool
        self._lock = threading.Lock()

    def call(self, method: str, *args: Any) -> Any:
        """Run ``method(*args)`` on an actor and return its result; a stage error is raised as itself."""
        ray = self.ray
        for attempt in range(self.max_retries + 1):
            with self._lock:
                slot = self._least_busy()
                actor = self.actors[slot]
                self.busy[slot] += 1
            try:
                return ray.get(getattr(actor, method).remote(*args))
            except ray.exceptions.RayActorError as exc:
                if getattr(exc, "actor_init_failed", False) or attempt == self.max_retries:
                    raise RuntimeError(f"Ray {self.kind} worker for '{self.spec.plugin}' died: "
                                       f"{str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}") from exc
                with self._lock:
                    if self.actors[slot] is actor:  # replace once, whichever call noticed first
                        ray.kill(actor, no_restart=True)
                        self.actors[slot] = self._start(slot)
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                raise (cause if isinstance(cause, Exception) else RuntimeError(str(exc))) from exc
            finally:
                with self._lock:
                    self.busy[slot] -= 1
        raise AssertionError("unreachable")

    def _least_busy(self) -> int:
        """The actor with the fewest calls out; among equals the one after the last chosen.

        Ties must rotate: a caller that waits for each answer (the scoring of one product after the
        other) always sees every actor idle, and the lowest slot would get every call, queued behind
        the generation jobs of one GPU while the other GPUs' scoring actors sit idle.
        """
        n = len(self.actors)
        slot = min(((self._next + i) % n for i in range(n)), key=lambda i: self.busy[i])
        self._next = (slot + 1) % n
        return slot

    def _start(self, slot: int) -> Any:
        return self._cls.options(**self._options(slot)).remote(*self._args)

    def stop(self) -> None:
        """Kill every actor of the pool."""
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)


class _Remote:
    """Stands in for one of the run's stages: its calls run on the stage's pool."""

    def __init__(self, pool: StagePool, config: dict[str, Any] | None = None) -> None:
        self.pool, self.name, self.base_dir, self.config = pool, pool.spec.plugin, None, config

    def for_config(self, config: Any) -> Any:
        """The same stand-in for a catalogue product's own config (the actors build that stage)."""
        return type(self)(self.pool, config.model_dump(mode="python") if hasattr(config, "model_dump") else dict(config))

    def ensure_setup(self) -> None:
        """Nothing to load here: the actors loaded the model."""

    def identity(self) -> dict[str, str]:
        """The model ids the workers' stage reports (asked once)."""
        if not hasattr(self, "_identity"):
            self._identity = self.pool.call("identity", self.config)
        return self._identity


class RemoteMasker(_Remote):
    """Stands in for the run's masker: ``mask()`` runs on the mask pool."""

    def mask(self, reference: Any) -> Any:
        """The reference's mask, computed on a worker."""
        return self.pool.call("mask", reference, self.config)


class RemoteScorer(_Remote):
    """Stands in for one of the run's scorers: ``score()`` runs on that scorer's pool."""

    def score(self, candidates: Any, context: Any) -> list[Any]:
        """The candidates' scores, computed on a worker."""
        return self.pool.call("score", list(candidates), context, self.config)


def default_stage_workers(gpus: float) -> int:
    """Actors per masking or scoring pool: one per GPU (beside its generation actor), at least one.

    One per GPU, not fewer: a call waits while its GPU runs a generation job, so the masks of the
    next products come soon enough only if many are computed at once.
    """
    return max(1, int(gpus))
