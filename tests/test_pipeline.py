"""The product pipeline with the local executor: overlap, one generator per run, same results as before."""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from ecomforge import hookimpl
from ecomforge.plugins import get_registry
from ecomforge.recipe import load_recipe
from ecomforge.run.executor import LocalExecutor
from ecomforge.run.runner import run_recipe
from ecomforge.run.store import read_manifest
from ecomforge.testing import temporary_plugins

import toyplugins

LOG: list[tuple[str, str, float]] = []  # (event, product, time): what the logging stages did, when
BUILT: list[object] = []


def _log(event: str, product: str) -> None:
    LOG.append((event, product, time.perf_counter()))


class LoggingMasker(toyplugins.ToyMasker):
    """The toy masker, noting when each product is masked."""

    name = "toy-log"

    def mask(self, reference):
        """Log, then mask."""
        _log("mask", reference.product)
        return super().mask(reference)


class LoggingGenerator(toyplugins.ToyGenerator):
    """The toy generator, noting each call's start and end, its instances, and failing on request."""

    name = "toy-log"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        BUILT.append(self)

    def generate(self, request):
        """Log around the toy generator; a reference named s13 makes the call fail."""
        product = request.reference.product
        _log("gen-start", product)
        if request.reference.name == "s13":
            raise RuntimeError("this job fails")
        try:
            return super().generate(request)
        finally:
            _log("gen-end", product)


@hookimpl
def register_maskers(register):
    """toy-log masker."""
    register(LoggingMasker)


@hookimpl
def register_generators(register):
    """toy-log generator."""
    register(LoggingGenerator)


class SlowWriter:
    """An observer whose on_candidate is slow, like a PNG encode of a large image."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds = seconds

    @hookimpl
    def on_candidate(self, run, record, image):
        """Sleep while logging start and end."""
        _log("write-start", record["product"])
        time.sleep(self.seconds)
        _log("write-end", record["product"])

    @hookimpl
    def on_product_done(self, run, product, records):
        """Note the product's end."""
        _log("done", product)


@pytest.fixture
def logging_registry():
    """Toy stages plus the logging ones; the logs cleared."""
    LOG.clear()
    BUILT.clear()
    with temporary_plugins(toyplugins, sys.modules[__name__]) as reg:
        yield reg


def _recipe(tmp_path, products: dict[str, list[str]], delay: float = 0.0, extra: str = ""):
    text = toyplugins.TOY_RECIPE.replace('{a: ["seed:1", "seed:2"], b: ["seed:3"]}', str(products))
    text = text.replace("mask: {plugin: toy}", "mask: {plugin: toy-log}")
    text = text.replace("  plugin: toy\n  sweep", f"  plugin: toy-log\n  config: {{delay: {delay}}}\n  sweep")
    path = tmp_path / "toy.yaml"
    path.write_text(text + extra)
    return path


def _strip(records):
    return sorted(({k: v for k, v in r.items() if k != "timings"} for r in records), key=lambda r: r["id"])


def test_one_generator_instance_per_run(logging_registry, tmp_path):
    """The local executor uses the runner's generator: one model copy, not a second one (issue 15)."""
    run_recipe(load_recipe(_recipe(tmp_path, {"a": ["seed:1"], "b": ["seed:2"]})), out=tmp_path / "runs")
    assert len(BUILT) == 1


def test_writing_overlaps_the_next_generation_call(logging_registry, tmp_path):
    """While a job's PNGs are written, the next generator call is already running (in order, one at a time)."""
    recipe = _recipe(tmp_path, {"a": ["seed:1", "seed:2"]}, delay=0.01)
    run_recipe(load_recipe(recipe), out=tmp_path / "runs", observers=[SlowWriter()])
    starts = [t for e, _, t in LOG if e == "gen-start"]
    ends = [t for e, _, t in LOG if e == "gen-end"]
    writes = list(zip([t for e, _, t in LOG if e == "write-start"], [t for e, _, t in LOG if e == "write-end"]))
    assert len(writes) == 2 * 2 * 3 and len(starts) == len(ends) == 2 * 2 * 2
    assert all(s >= e for s, e in zip(starts[1:], ends))  # generator calls never overlap each other
    overlapped = [1 for w0, w1 in writes if any(s < w1 and e > w0 for s, e in zip(starts, ends))]
    assert len(overlapped) >= len(writes) // 3  # many writes ran while a generator call did (none without)


def test_the_next_product_is_masked_while_one_generates(logging_registry, tmp_path):
    products = {p: [f"seed:{i + 1}"] for i, p in enumerate("abcd")}
    run_recipe(load_recipe(_recipe(tmp_path, products, delay=0.01)), out=tmp_path / "runs")
    masked_b = next(t for e, p, t in LOG if e == "mask" and p == "b")
    last_gen_a = max(t for e, p, t in LOG if e == "gen-end" and p == "a")
    assert masked_b < last_gen_a


def test_look_ahead_is_bounded(logging_registry, tmp_path):
    """A long catalogue is not masked all at once: at most a few products are prepared ahead."""
    products = {f"p{i:02d}": [f"seed:{i + 20}"] for i in range(24)}
    run_recipe(load_recipe(_recipe(tmp_path, products, delay=0.002)), out=tmp_path / "runs",
               observers=[SlowWriter(0.0)])
    ahead, masked, done = 0, set(), set()
    for event, product, _ in LOG:
        masked |= {product} if event == "mask" else set()
        done |= {product} if event == "done" else set()
        ahead = max(ahead, len(masked - done))
    assert 2 <= ahead <= 5  # it does look ahead, and only a little


def test_overlap_gives_the_same_manifest_and_pixels_as_no_overlap(logging_registry, tmp_path):
    products = {"a": ["seed:1", "seed:2"], "b": ["seed:3"], "c": ["seed:4"]}
    recipe = _recipe(tmp_path, products)
    plain = run_recipe(load_recipe(recipe, ["execute.plugin=local", "execute.config.prefetch=0"]), out=tmp_path / "plain").run_dir
    fast = run_recipe(load_recipe(recipe), out=tmp_path / "fast").run_dir
    a, b = read_manifest(plain), read_manifest(fast)
    assert len(a) == 4 * 2 * 3 and _strip(a) == _strip(b)
    assert [r["product"] for r in b] == sorted(r["product"] for r in b)  # products written in catalogue order
    for r in a:
        assert np.array_equal(np.asarray(Image.open(plain / r["image"])), np.asarray(Image.open(fast / r["image"])))


def test_a_product_failing_in_generation_is_recorded_and_the_others_go_on(logging_registry, tmp_path):
    """Failure isolation holds in the pipeline: b's job raises; a and c (prepared around it) are written."""
    recipe = _recipe(tmp_path, {"a": ["seed:1"], "b": ["seed:13"], "c": ["seed:2"]})
    result = run_recipe(load_recipe(recipe), out=tmp_path / "runs")
    assert {r["product"] for r in read_manifest(result.run_dir) if "id" in r} == {"a", "c"}
    failed = (result.run_dir / "failed.csv").read_text()
    assert "b,generate,toy-log" in failed and "this job fails" in failed
    assert threading.active_count() < 20  # helper threads ended with the run


def test_fail_fast_stops_at_the_failing_product_after_the_earlier_ones_are_written(logging_registry, tmp_path):
    from ecomforge.errors import StageError

    recipe = _recipe(tmp_path, {"a": ["seed:1"], "b": ["seed:13"], "c": ["seed:2"]})
    with pytest.raises(StageError) as info:
        run_recipe(load_recipe(recipe), out=tmp_path / "runs", fail_fast=True)
    assert info.value.step == "generate" and info.value.product == "b"
    run_dir = next((tmp_path / "runs").iterdir())
    assert {r["product"] for r in read_manifest(run_dir)} == {"a"}


def test_a_product_failing_in_masking_is_recorded_and_the_others_go_on(logging_registry, tmp_path):
    """prepare() runs in a helper thread: its failure still reaches the runner's failure record, in order."""
    class Steps:
        seen: list[tuple[str, str]] = []

        @hookimpl
        def on_step_end(self, run, step, product, seconds):
            """Note it."""
            self.seen.append((product, step))

    recipe = _recipe(tmp_path, {"a": ["seed:1"], "b": ["nope"], "c": ["seed:2"]})
    result = run_recipe(load_recipe(recipe), out=tmp_path / "runs", observers=[spy := Steps()])
    assert [r["product"] for r in read_manifest(result.run_dir) if "id" in r] == ["a"] * 6 + ["c"] * 6
    assert "b,acquire,toy" in (result.run_dir / "failed.csv").read_text()
    steps = ["acquire", "mask", "generate", "score", "filter"]
    assert spy.seen == [("a", s) for s in steps] + [("c", s) for s in steps]  # nothing ends for b: it failed


SCORING = {"first_saw_second": None, "wait": True}


class PooledScorer:
    """A scorer stand-in as the Ray executor gives one (``pool.actors``): the real toy scorer, called here.

    The first product's call waits until the second product's scoring has begun, so the test sees
    whether products are scored at once (and that finishing in another order changes nothing).
    """

    def __init__(self, real, started: threading.Event) -> None:
        self.real, self.started = real, started
        self.pool = type("Pool", (), {"actors": [0, 1, 2]})()

    def __getattr__(self, name):
        return getattr(self.real, name)

    def score(self, candidates, context):
        """The real scores; the first product's only once the next product is being scored too."""
        if context.references[0].product == "a" and SCORING["wait"]:
            SCORING["first_saw_second"] = self.started.wait(10)
        else:
            self.started.set()
        return self.real.score(candidates, context)


class PooledScoreExecutor(LocalExecutor):
    """The local executor, with its scorers moved to a (pretend) pool of three scoring actors."""

    name = "pooled-score"
    default = False  # not what a recipe without `execute:` gets

    def remote_stages(self, specs, *, base_dir=None):
        """Stand-ins for the run's scorers."""
        started = threading.Event()
        return {"score": [PooledScorer(get_registry().create("scorer", s.plugin, s.config, device=s.device), started)
                          for s in specs["score"]]}


@hookimpl
def register_executors(register):
    """pooled-score executor."""
    register(PooledScoreExecutor)


def test_products_scored_at_once_on_pooled_scorers_keep_ids_order_and_pixels(logging_registry, tmp_path):
    products = {"a": ["seed:1", "seed:2"], "b": ["seed:3"], "c": ["seed:4"]}
    recipe = _recipe(tmp_path, products)
    plain = run_recipe(load_recipe(recipe, ["execute.plugin=local", "execute.config.prefetch=0"]), out=tmp_path / "plain").run_dir
    SCORING.update(first_saw_second=None, wait=True)
    pooled = run_recipe(load_recipe(recipe, ["execute.plugin=pooled-score"]), out=tmp_path / "pooled",
                        observers=[SlowWriter(0.0)]).run_dir
    assert SCORING["first_saw_second"] is True  # b was scored while a's scoring was still out
    a, b = read_manifest(plain), read_manifest(pooled)
    assert len(a) == 4 * 2 * 3 and _strip(a) == _strip(b)
    assert [r["product"] for r in b] == sorted(r["product"] for r in b)  # the manifest in catalogue order
    assert [p for e, p, _ in LOG if e == "done"] == ["a", "b", "c"]  # on_product_done too, though b scored first
    for r in a:
        assert np.array_equal(np.asarray(Image.open(plain / r["image"])), np.asarray(Image.open(pooled / r["image"])))


def test_a_product_failing_in_generation_on_pooled_scorers_is_recorded_and_the_others_go_on(logging_registry, tmp_path):
    SCORING.update(first_saw_second=None, wait=False)
    recipe = _recipe(tmp_path, {"a": ["seed:1"], "b": ["seed:13"], "c": ["seed:4"]})
    result = run_recipe(load_recipe(recipe, ["execute.plugin=pooled-score"]), out=tmp_path / "runs",
                        observers=[SlowWriter(0.0)])
    assert [r["product"] for r in read_manifest(result.run_dir) if "id" in r] == ["a"] * 6 + ["c"] * 6
    assert "b,generate,toy-log" in (result.run_dir / "failed.csv").read_text()
    assert [p for e, p, _ in LOG if e == "done"] == ["a", "c"]
