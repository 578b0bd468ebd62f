"""Cooperative cancel: a token set around a run stops it inside a long call, while planning, and keeps what was made."""
from __future__ import annotations

import sys
import threading
import time

import pytest

from ecomforge import hookimpl
from ecomforge.errors import Cancelled
from ecomforge.recipe import load_recipe
from ecomforge.run import cancel
from ecomforge.run import runner as runner_mod
from ecomforge.run.runner import run_recipe
from ecomforge.run.store import read_manifest
from ecomforge.testing import temporary_plugins

import toyplugins

STEPS: list[int] = []  # one entry per small step the stepping generator slept


class SteppingGenerator(toyplugins.ToyGenerator):
    """The toy generator, but each image is 20 small sleeps with a cancel check between them."""

    name = "toy-steps"

    def generate(self, request):
        """Sleep in small steps (like a diffusion loop calling check()), then make the toy images."""
        for _ in request.seeds:
            for _ in range(20):
                time.sleep(0.01)
                STEPS.append(1)
                cancel.check()
        return super().generate(request)


@hookimpl
def register_generators(register):
    """toy-steps generator."""
    register(SteppingGenerator)


@pytest.fixture
def registry():
    """Toy stages plus the stepping generator."""
    STEPS.clear()
    with temporary_plugins(toyplugins, sys.modules[__name__]) as reg:
        yield reg


def _recipe(tmp_path, generate: str):
    text = toyplugins.TOY_RECIPE.replace('{a: ["seed:1", "seed:2"], b: ["seed:3"]}', '{a: ["seed:1"]}')
    text = text.replace("generate:\n  plugin: toy\n  sweep: {level: [60, 180]}\n  seeds: [1, 2, 3]\n  batch_size: 2\n",
                        generate)
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    return load_recipe(path)


def test_check_is_a_no_op_without_a_token_and_follows_the_context():
    """No token: check() passes. Under scope(): it raises once cancelled, with the reason; the scope resets."""
    cancel.check()
    token = cancel.CancelToken()
    with cancel.scope(token):
        cancel.check()
        token.cancel("interrupted")
        token.cancel("cancelled")  # the first reason is kept
        with pytest.raises(Cancelled) as info:
            cancel.check()
        assert info.value.reason == "interrupted" and token.cancelled
    cancel.check()  # outside the scope again
    assert cancel.current() is None


def test_threads_see_the_token_only_through_in_context():
    """A plain thread starts in an empty context; a thread started with in_context sees the caller's token."""
    token = cancel.CancelToken()
    token.cancel()
    seen: dict[str, object] = {}

    def probe(key):
        seen[key] = cancel.current()

    with cancel.scope(token):
        for key, target in (("plain", probe), ("inherited", cancel.in_context(probe))):
            t = threading.Thread(target=target, args=(key,))
            t.start()
            t.join()
    assert seen == {"plain": None, "inherited": token}


def test_cancel_from_another_thread_stops_a_long_generator_call_and_keeps_what_was_made(registry, tmp_path):
    """Two jobs of four images (80 small steps each): a cancel in the second job's call stops it at its next step;
    the first job's candidates are on disk and a resume finishes the run."""
    resolved = _recipe(tmp_path, "generate:\n  plugin: toy-steps\n  sweep: {level: [60, 180]}\n"
                                 "  seeds: [1, 2, 3, 4]\n  batch_size: 4\n")
    token = cancel.CancelToken()
    at_cancel: list[int] = []

    def canceller():
        while len(STEPS) < 80 + 10:  # the first job is done, the second one is ten steps in
            time.sleep(0.002)
        at_cancel.append(len(STEPS))
        token.cancel()

    threading.Thread(target=canceller, daemon=True).start()
    with cancel.scope(token), pytest.raises(Cancelled):
        run_recipe(resolved, out=tmp_path / "runs")
    stopped_after = len(STEPS) - at_cancel[0]
    assert stopped_after <= 2, stopped_after  # not the 70 steps left in that call, nor the next product's
    run_dir = next((tmp_path / "runs").iterdir())
    assert len(list((run_dir / "candidates").glob("*.json"))) == 4  # the first job's candidates stay
    result = run_recipe(resolved, resume=run_dir)
    assert len(read_manifest(run_dir)) == len(result.records) == 8


def test_cancel_lands_while_jobs_are_planned(registry, tmp_path, monkeypatch):
    """A sweep of 100 000 ids is being planned when the cancel comes: planning stops, nothing is generated."""
    resolved = _recipe(tmp_path, "generate:\n  plugin: toy-steps\n  sweep: {level: [60, 180]}\n"
                                 "  seeds: {count: 50000}\n  batch_size: 1\n")
    made = []
    real_id = runner_mod.candidate_id

    def counting_id(**kwargs):
        made.append(1)
        return real_id(**kwargs)

    monkeypatch.setattr(runner_mod, "candidate_id", counting_id)
    token = cancel.CancelToken()

    def canceller():
        while len(made) < 500:
            time.sleep(0.001)
        token.cancel()

    threading.Thread(target=canceller, daemon=True).start()
    with cancel.scope(token), pytest.raises(Cancelled):
        run_recipe(resolved, out=tmp_path / "runs")
    assert 500 <= len(made) < 50_000, len(made)  # stopped inside the first sweep point's seeds
    assert STEPS == []  # no generator call began


class Interrupter:
    """An observer that raises KeyboardInterrupt (Ctrl-C) at the first candidate, once the next call is running."""

    def __init__(self) -> None:
        self.at: list[int] = []

    @hookimpl
    def on_candidate(self, run, record, image):
        """Wait until the second job's call is five steps in, then interrupt."""
        while len(STEPS) < 80 + 5:
            time.sleep(0.002)
        self.at.append(len(STEPS))
        raise KeyboardInterrupt


def test_a_run_stopped_by_ctrl_c_ends_the_generator_call_in_flight(registry, tmp_path):
    """No token set around the run: the executor's own child token still ends the call running ahead
    (instead of waiting out its remaining 75 steps) when the caller stops."""
    resolved = _recipe(tmp_path, "generate:\n  plugin: toy-steps\n  sweep: {level: [60, 180]}\n"
                                 "  seeds: [1, 2, 3, 4]\n  batch_size: 4\n")
    observer = Interrupter()
    with pytest.raises(KeyboardInterrupt):
        run_recipe(resolved, out=tmp_path / "runs", observers=[observer])
    assert len(STEPS) - observer.at[0] <= 2, len(STEPS) - observer.at[0]
