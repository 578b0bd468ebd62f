"""The Ray executor: generation jobs run on long-lived actors (one per GPU), each holding the model loaded."""
from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..errors import StageError, UsageError
from ..stages import Executor, GenerationJob, GeneratorSpec, StageConfig
from ..types import Candidate, GenerationRequest, Mask, Reference
from .pipeline_ray import STAGE_CPUS, RemoteMasker, RemoteScorer, StagePool, default_stage_workers

ADDRESS_HELP = ("'auto': this process's Ray session if started, else the cluster RAY_ADDRESS or a local "
                "`ray start` points at, else a new local one; 'local': always start a private local cluster; "
                "'ray://host:port' (Ray client) or 'host:port' (the head's GCS): join that cluster.")


class RayExecutor(Executor):
    """Runs generation jobs on Ray actors that build the generator once and keep its weights loaded."""

    name = "ray"

    class Config(StageConfig):
        """Where the Ray workers are and how many run at once."""

        address: str = Field(default="auto", description=ADDRESS_HELP)
        num_workers: int | None = Field(
            default=None, ge=1,
            description="Actors (model copies) to start. Default: one per GPU in the cluster, else one per "
                        "num_cpus_per_worker CPU slots.")
        num_gpus_per_worker: float | None = Field(
            default=None, ge=0,
            description="GPUs each actor reserves (0.5 packs two actors on a GPU). Default with GPUs: 1, or "
                        "0.8 when masking and scoring run on the workers (room for their actors on every GPU); "
                        "else 0.")
        num_cpus_per_worker: float = Field(default=1.0, gt=0, description="CPU slots each actor reserves.")
        max_retries: int = Field(
            default=3, ge=0,
            description="Times one job is sent again after the actor running it died (the actor is replaced).")
        max_in_flight: int | None = Field(
            default=None, ge=1,
            description="Jobs submitted but not yet returned, over all actors (bounds memory). "
                        "Default: 2 per actor, so each has its next job queued while it works.")
        remote_stages: list[Literal["mask", "score"]] | None = Field(
            default=None,
            description="Stages that also run on Ray actors (one pool per stage, each actor holding its "
                        "model). Default: mask and score when the cluster has GPUs, none (the driver) otherwise.")
        stage_workers: int | None = Field(
            default=None, ge=1, description="Actors per remote stage pool (the masker; each scorer). "
                                            "Default: one per GPU, at least 1.")
        stage_gpus: float | None = Field(
            default=None, ge=0, le=1,
            description="GPU share each masking or scoring actor reserves. Default: 0.05 with GPUs (they "
                        "share a GPU with a generation actor), else 0.")
        plugins: list[str] = Field(
            default_factory=list,
            description="Extra plugin modules (importable names, e.g. 'my_plugins') each actor imports and "
                        "registers beside the installed entry points: how a local, uninstalled plugin reaches "
                        "the workers. Ship the code with runtime_env.")
        runtime_env: dict[str, Any] = Field(
            default_factory=dict,
            description="Ray runtime_env for the actors, e.g. {env_vars: {PYTHONPATH: /src}}, "
                        "{py_modules: [/src/my_plugins]} or {pip: [ecomforge-diffusers]}.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pools: dict[str, _Pool] = {}
        self._stage_pools: list[StagePool] = []
        self._remote: list[str] = []
        self._pg: Any = None  # the GPU bundles, when masking/scoring actors share the GPUs
        self._pg_size = self._gen_per_bundle = 0
        self._started_ray = False

    # --- public ---------------------------------------------------------------------------
    def map(self, spec: GeneratorSpec, jobs: Iterable[GenerationJob], *,
            isolate: bool = False) -> Iterator[tuple[GenerationJob, list[Candidate] | Exception]]:
        """Send each job to a free actor; yield (job, candidates) as each finishes, retrying jobs whose actor died.

        ``jobs`` is pulled lazily, only when an actor has room (``max_in_flight``): a long stream of
        products is never all in memory. With ``isolate``, a job whose generator raised yields the
        exception as its output instead of ending the map.
        """
        ray = self._connect()
        pool = self._pool(ray, spec)
        limit = self.config.max_in_flight or 2 * len(pool.actors)
        source = iter(jobs)
        retry: list[GenerationJob] = []  # jobs whose actor died, sent again first
        tries: dict[str, int] = {}
        running: dict[Any, tuple[int, Any, GenerationJob]] = {}  # object ref -> (slot, actor, job)
        sent: dict[int, list[Any]] = {}  # id() of a reference/mask -> [object ref, it, jobs in flight]
        exhausted = False
        try:
            while True:
                while len(running) < limit and (retry or not exhausted):
                    job = retry.pop() if retry else next(source, None)
                    if job is None:
                        exhausted = True
                        break
                    slot = pool.least_busy()
                    running[pool.submit(slot, _wire(ray, job, sent))] = (slot, pool.actors[slot], job)
                if not running:
                    return
                done, _ = ray.wait(list(running), num_returns=1)
                slot, actor, job = running.pop(done[0])
                pool.busy[slot] -= 1
                try:
                    out = ray.get(done[0])
                except ray.exceptions.RayActorError as exc:
                    if getattr(exc, "actor_init_failed", False):
                        raise _init_error(spec, exc) from exc
                    tries[job.key] = tries.get(job.key, 0) + 1
                    if tries[job.key] > self.config.max_retries:
                        raise StageError("generate", spec.plugin, job.product,
                                         RuntimeError(f"Ray worker died {tries[job.key]} times on job {job.key}")) from exc
                    pool.replace(slot, actor)
                    _forget(sent, job)
                    retry.append(job)
                    continue
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    err = cause if isinstance(cause, Exception) else RuntimeError(str(exc))
                    if not isolate:
                        raise err from exc
                    out = err
                _forget(sent, job)
                yield job, out
        finally:
            for ref in running:  # a stopped run (error, Ctrl-C, consumer gone) leaves nothing queued
                with contextlib.suppress(Exception):  # best effort: the actor may be gone already
                    ray.cancel(ref, force=False)

    def remote_stages(self, specs: dict[str, Any], *, base_dir: Path | None = None) -> dict[str, Any]:
        """Start actor pools for masking and scoring; the stand-ins the runner calls instead of its own stages."""
        ray = self._connect()
        gpus = float(ray.cluster_resources().get("GPU", 0))
        stages = self.config.remote_stages
        self._remote = list(stages if stages is not None else (["mask", "score"] if gpus >= 1 else []))
        if not self._remote:
            return {}
        share = self.config.stage_gpus if self.config.stage_gpus is not None else (0.05 if gpus >= 1 else 0.0)
        options = {"num_gpus": share, "num_cpus": STAGE_CPUS,
                   "runtime_env": dict(self.config.runtime_env) or None, "max_restarts": 0}
        n = self.config.stage_workers or default_stage_workers(gpus)
        n_pools = int("mask" in self._remote) + (len(specs["score"]) if "score" in self._remote else 0)
        if share > 0 and gpus >= 1:
            self._reserve_gpus(ray, int(gpus), -(-n * n_pools // int(gpus)), share)
        if "generate" in specs:  # generation actors first, one per GPU bundle
            self._pool(ray, specs["generate"])

        def pool(kind: str, spec: GeneratorSpec) -> StagePool:
            made = StagePool(ray, kind, spec, n=n, options=options, plugins=list(self.config.plugins),
                             base_dir=base_dir, max_retries=self.config.max_retries,
                             placement=self._placement, offset=len(self._stage_pools) * n)
            self._stage_pools.append(made)
            return made

        moved: dict[str, Any] = {}
        if "mask" in self._remote:
            moved["mask"] = RemoteMasker(pool("masker", specs["mask"]))
        if "score" in self._remote:
            moved["score"] = [RemoteScorer(pool("scorer", spec)) for spec in specs["score"]]
        return moved

    def _reserve_gpus(self, ray: Any, gpus: int, stage_per_gpu: int, share: float) -> None:
        """One placement-group bundle per GPU: a generation actor and a few stage actors share each GPU.

        Without it Ray packs the small stage actors onto the first GPUs, where they take turns with
        one generation actor (and may leave no room for another): the bundles spread them evenly.
        """
        from ray.util.placement_group import placement_group

        per_gen = self.config.num_gpus_per_worker if self.config.num_gpus_per_worker is not None else 0.8
        if per_gen + stage_per_gpu * share > 1 + 1e-9:
            raise UsageError(f"execute.config: num_gpus_per_worker={per_gen} leaves no GPU room for "
                             f"{stage_per_gpu} masking/scoring actor(s) of stage_gpus={share} per GPU",
                             hint="lower num_gpus_per_worker (e.g. 0.8) or stage_gpus, or set remote_stages: []")
        cpus = self.config.num_cpus_per_worker * math.floor(1 / per_gen + 1e-9) + STAGE_CPUS * stage_per_gpu
        self._pg = placement_group([{"GPU": 1.0, "CPU": cpus}] * gpus, strategy="PACK")
        self._pg_size = gpus
        self._gen_per_bundle = max(1, math.floor((1 - stage_per_gpu * share) / per_gen + 1e-9))
        ray.get(self._pg.ready())

    def _placement(self, slot: int) -> dict[str, Any]:
        """Actor options that put actor ``slot`` into GPU bundle ``slot mod GPUs`` (none without bundles)."""
        if self._pg is None:
            return {}
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=self._pg, placement_group_bundle_index=slot % self._pg_size)}

    def prepare_threads(self) -> int:
        """Products the runner may prepare at once: enough to keep every masking actor busy."""
        return max((len(p.actors) for p in self._stage_pools if p.kind == "masker"), default=1)

    def close(self) -> None:
        """Stop this executor's actors (and the local cluster if this executor started it)."""
        if not self._pools and not self._stage_pools:
            return
        import ray

        pools: list[_Pool | StagePool] = [*self._pools.values(), *self._stage_pools]
        for pool in pools:
            pool.stop()
        self._pools.clear()
        self._stage_pools.clear()
        if self._pg is not None:
            with contextlib.suppress(Exception):
                ray.util.remove_placement_group(self._pg)
            self._pg = None
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            self._started_ray = False

    # --- connecting and pools ---------------------------------------------------------------
    def _connect(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise UsageError("executor 'ray' needs Ray installed", hint="pip install 'ecomforge[ray]'") from exc
        if ray.is_initialized():
            return ray
        address = self.config.address
        kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": True}
        if address == "local":
            kwargs.update(address="local", include_dashboard=False)
        elif address != "auto":
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UsageError(f"execute.config.address={address!r}: cannot connect to Ray "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
        self._started_ray = True
        return ray

    def _pool(self, ray: Any, spec: GeneratorSpec) -> _Pool:
        from .ids import canonical_json

        key = canonical_json({"plugin": spec.plugin, "config": spec.config, "device": spec.device})
        if key not in self._pools:
            gpus = self.config.num_gpus_per_worker
            have_gpus = float(ray.cluster_resources().get("GPU", 0))
            if gpus is None:  # with masking/scoring actors on the GPUs, leave each GPU room for them
                gpus = (0.8 if self._remote else 1.0) if have_gpus >= 1 else 0.0
            # sized by the cluster, not by one product: jobs of the following products fill the actors
            n = self.config.num_workers or (self._pg_size * self._gen_per_bundle if self._pg is not None else
                                            default_workers(have_gpus, float(ray.cluster_resources().get("CPU", 1)),
                                                            gpus, self.config.num_cpus_per_worker))
            options = {"num_gpus": gpus, "num_cpus": self.config.num_cpus_per_worker,
                       "runtime_env": dict(self.config.runtime_env) or None, "max_restarts": 0}
            self._pools[key] = _Pool(ray, options, spec, list(self.config.plugins), n, self._placement)
        return self._pools[key]


@dataclass
class _WireJob:
    """A job as sent to an actor: plain values only (the config as a dict, rebuilt by the actor's plugin)."""

    reference: Any  # Reference or an object ref to one
    mask: Any
    prompt: str
    negative_prompt: str
    config: dict[str, Any]
    seeds: tuple[int, ...]


def _wire(ray: Any, job: GenerationJob, sent: dict[int, list[Any]]) -> _WireJob:
    """Strip a job to what an actor needs; a reference or mask goes to the object store once while in use."""
    req = job.request
    refs = []
    for obj in (req.reference, req.mask):
        entry = sent.setdefault(id(obj), [None, obj, 0])  # the obj held here keeps its id() from being reused
        if entry[0] is None:
            entry[0] = ray.put(obj)
        entry[2] += 1
        refs.append(entry[0])
    # The pydantic Config class may live in a module the worker only gets via `plugins`: send a dict.
    return _WireJob(refs[0], refs[1], req.prompt, req.negative_prompt,
                    req.config.model_dump(mode="python"), tuple(req.seeds))


def _forget(sent: dict[int, list[Any]], job: GenerationJob) -> None:
    """Release the object-store copies no job in flight uses any more (memory stays bounded on long streams)."""
    for obj in (job.request.reference, job.request.mask):
        entry = sent.get(id(obj))
        if entry is not None:
            entry[2] -= 1
            if entry[2] <= 0:
                del sent[id(obj)]


class _Pool:
    """The actors of one generator spec, with how many jobs each has in flight."""

    def __init__(self, ray: Any, options: dict[str, Any], spec: GeneratorSpec, plugins: list[str], n: int,
                 placement: Any = lambda slot: {}) -> None:
        self.ray, self.options, self.spec, self.plugins, self.placement = ray, options, spec, plugins, placement
        self.cls = ray.remote(GeneratorWorker)
        self.actors = [self._start(i) for i in range(n)]
        self.busy = [0] * n

    def _start(self, slot: int) -> Any:
        return self.cls.options(**self.options, **self.placement(slot)).remote(
            self.spec.plugin, self.spec.config, self.spec.device, self.plugins)

    def least_busy(self) -> int:
        """The slot with the fewest jobs in flight (ties: the lowest slot)."""
        return min(range(len(self.actors)), key=lambda i: self.busy[i])

    def submit(self, slot: int, job: _WireJob) -> Any:
        """Queue one job on an actor."""
        self.busy[slot] += 1
        return self.actors[slot].generate.remote(job)

    def replace(self, slot: int, dead: Any) -> None:
        """Start a fresh actor in a slot whose actor died, once: its other queued jobs fail and retry too."""
        if self.actors[slot] is not dead:
            return  # already replaced when an earlier job of the dead actor failed
        self.ray.kill(dead, no_restart=True)
        self.actors[slot] = self._start(slot)

    def stop(self) -> None:
        """Kill every actor of the pool."""
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)


class GeneratorWorker:
    """The actor body: builds the generator once from its spec and serves batched generate calls."""

    def __init__(self, plugin: str, config: dict[str, Any], device: str, plugins: list[str]) -> None:
        from ..plugins import build_registry, get_registry

        registry = build_registry([importlib.import_module(m) for m in plugins]) if plugins else get_registry()
        self.generator = registry.create("generator", plugin, config, device=device)
        self.generator.ensure_setup()  # load weights now, before the first job arrives

    def generate(self, job: _WireJob) -> list[Candidate]:
        """Run one batched generator call."""
        import ray
        reference: Reference = _resolve(ray, job.reference)
        mask: Mask = _resolve(ray, job.mask)
        config = self.generator.Config.model_validate(job.config)
        return self.generator.generate(GenerationRequest(reference, mask, job.prompt, job.negative_prompt,
                                                         config, job.seeds))


def _resolve(ray: Any, value: Any) -> Any:
    """Ray passes top-level object refs by value but not refs nested in a dataclass: fetch those."""
    return ray.get(value) if isinstance(value, ray.ObjectRef) else value


def _init_error(spec: GeneratorSpec, exc: BaseException) -> UsageError:
    """A one-line error for an actor whose generator could not be built (plugin missing on the workers...)."""
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else type(exc).__name__
    hint = None
    if "PluginNotFound" in text or "ModuleNotFoundError" in text or "unknown generator" in text:
        hint = ("install the plugin on every worker, or name its module in execute.config.plugins "
                "and ship it with execute.config.runtime_env")
    return UsageError(f"Ray workers could not build generator '{spec.plugin}': {last[:200]}", hint=hint)


def default_workers(gpus: float, cpus: float, per_gpu: float, per_cpu: float) -> int:
    """How many actors fit: by GPUs when GPUs are used (a fraction packs floor(1/share) per GPU), else by CPU slots."""
    if per_gpu <= 0:
        return max(1, math.floor(cpus / per_cpu))
    if per_gpu <= 1:  # Ray places a fractional actor inside one GPU: 0.8 fits once per GPU, 0.5 twice
        return max(1, math.floor(gpus) * math.floor(1 / per_gpu + 1e-9))
    return max(1, math.floor(gpus / per_gpu))
