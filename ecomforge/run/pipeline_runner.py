"""The runner's products through the pipeline: the runner's own steps, in the order the pipeline allows.

``Runner._acquire_and_mask`` and ``_plan_jobs`` run in helper threads (hook calls recorded, replayed
here in order); generation streams through one ``executor.map``; ``_score``, ``_filter``,
``_records`` run in helper threads as each product's last job returns (hooks recorded, replayed in
order, as they come while the caller waits for that product), while the executor already works on the
next products. With scoring on remote workers several
products are scored at once (one wait per scorer call would otherwise pace the whole run); their
filter and record steps still run one product at a time, in catalogue order. A product that fails in
any step goes to the runner's failure handler (or stops the run when it has none / runs fail-fast).
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import StageError
from ..stages import GeneratorSpec
from . import cancel
from .checks import candidates_problem, check_candidates
from .context import RunContext
from .pipeline import Event, Prepared, RecordingHooks, stream
from .store import RunStore
from .work import ProductWork


def run_products(runner: Any, ctx: RunContext, store: RunStore,
                 products: Iterable[tuple[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Yield each product's manifest records (after ``on_product_done``), products overlapping."""
    real = runner.hooks
    hooks = RecordingHooks(real)
    runner.hooks = hooks
    restore = _remote_stages(runner)
    recipe = runner.resolved.recipe
    spec = GeneratorSpec(recipe.generate.plugin, dict(runner.resolved.configs["generate"].model_dump()), runner.device)

    def prepare(product: str, specs: Any) -> Prepared:
        work = ProductWork(product, specs)
        calls: list[tuple[str, dict[str, Any]]] = []  # the hook calls made while preparing it
        hooks.record(calls)
        try:
            runner._acquire_and_mask(ctx, work)
            work.jobs = runner._plan_jobs(product, work.refs, work.masks)
        except Exception as exc:
            return Prepared(product, work, calls, error=exc)
        finally:
            hooks.record(None)
        return Prepared(product, work, calls)

    def resumed(job: Any) -> Any:
        loaded = [store.load_candidate(cid) for cid in job.ids]
        return loaded if all(c is not None for c in loaded) else None

    remote = restore is not None
    threads = getattr(runner.executor, "prepare_threads", lambda: 1)() if remote else 1
    events = stream(products, prepare, runner.executor, spec, lookahead=2 * threads, threads=threads,
                    resumed=resumed)
    driver = _Driver(runner, ctx, hooks, finish_threads(runner.scorers) if remote else 1)
    try:
        for ev in events:
            yield from driver.push(ev)
        yield from driver.drain(block=True)
    except Exception as exc:  # the executor itself failed (workers cannot start...): the run stops
        if isinstance(exc, StageError):
            raise
        hooks.on_step_error(run=ctx, step="generate", product=driver.current, error=exc)
        raise StageError("generate", recipe.generate.plugin, driver.current, exc) from exc
    finally:
        events.close()  # joins the helper threads now, before an exception leaves the run
        driver.close()
        runner.hooks = real
        if restore is not None:
            restore()


class LiveCalls(list[Any]):
    """Hook calls a helper thread records, with a wake-up for the caller's thread, which replays them as they come.

    A product's scoring can take as long as its generation: replayed only once it had ended, its progress
    (``on_step_start`` of score, each ``on_step_advance``) reached observers all at once, afterwards.
    """

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()
        self.replayed = 0  # calls handed to the real hooks so far

    def append(self, item: Any) -> None:  # RecordingHooks records with append(), in the helper thread
        with self.changed:
            super().append(item)
            self.changed.notify_all()

    def wake(self, _: Any = None) -> None:
        """Wake a waiting caller (the helper's work ended)."""
        with self.changed:
            self.changed.notify_all()

    def take(self) -> list[Any]:
        """The calls recorded since the last take()."""
        with self.changed:
            new = self[self.replayed:]
            self.replayed += len(new)
            return new

    def wait(self, fut: Future[Any]) -> None:
        """Until a call is recorded that was not taken yet, or ``fut`` (whose done-callback is ``wake``) is done."""
        with self.changed:
            self.changed.wait_for(lambda: len(self) > self.replayed or fut.done(), timeout=1.0)


class _Driver:
    """Handles events in the caller's thread, in order; finishes each product in a helper thread.

    A product being finished (score, filter, records) holds the events after it, so hooks see one
    product after the other, while the executor keeps generating the next products. With several
    finish threads (scorers on worker pools), a held product whose candidates are all in is scored
    at once, ahead of its turn (``_early``); its filter and records still wait for its turn.
    """

    def __init__(self, runner: Any, ctx: RunContext, hooks: RecordingHooks, threads: int = 1) -> None:
        self.runner, self.ctx, self.hooks = runner, ctx, hooks
        self.state: dict[int, dict[str, Any]] = {}
        self.backlog: deque[Event] = deque()
        self.finishing: deque[tuple[Any, Future[Any], LiveCalls]] = deque()  # (work, its finish, its hook calls)
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="ecomforge-finish")
        self.early: dict[int, dict[str, Any]] | None = {} if threads > 1 else None  # id(product) -> its early finish
        self.current = "*"

    def push(self, ev: Event) -> Iterator[list[dict[str, Any]]]:
        """Take one event; yield the records of every product that is now complete."""
        self.backlog.append(ev)
        if self.early is not None:
            self._early(ev, self.early)
        yield from self.drain(block=False)

    def drain(self, block: bool) -> Iterator[list[dict[str, Any]]]:
        """Handle what can be handled now (everything when ``block``)."""
        while self.backlog or self.finishing:
            if self.finishing:
                work, fut, calls = self.finishing[0]
                # Its score/filter steps and on_product_done, here, in order, as far as they have come: the
                # products after it wait (their events stay in the backlog), so hooks still see one at a time.
                self.hooks.replay(calls.take(), run=self.ctx)
                if not fut.done():
                    if not block:
                        return
                    calls.wait(fut)
                    continue
                _, records, error = fut.result()
                self.finishing.popleft()
                self.hooks.replay(calls.take(), run=self.ctx)
                yield records if error is None else _failed(self.runner, self.ctx, work, error)
                continue
            ev = self.backlog.popleft()
            self.current = ev.prepared.product
            st = self.state.setdefault(id(ev.prepared), {"gen_s": 0.0})
            early = self.early.pop(id(ev.prepared), None) if self.early is not None and ev.kind == "end" else None
            if ev.kind == "end":
                self.state.pop(id(ev.prepared), None)
            if st.get("reported"):  # failed and recorded already: its later events mean nothing
                _release(early, use=False)
                continue
            done = _handle(self.runner, self.ctx, ev, st)
            st["reported"] = done is not None
            if done is _FINISH:
                calls = early["calls"] if early else LiveCalls()
                fut = early["fut"] if early else self.pool.submit(cancel.in_context(self._finish), ev.prepared.work,
                                                                   None, calls)
                _release(early, use=True)  # its turn: the early finish may filter and write records now
                fut.add_done_callback(calls.wake)
                self.finishing.append((ev.prepared.work, fut, calls))
            else:
                _release(early, use=False)
                if done is not None:
                    yield done

    def _early(self, ev: Event, held: dict[int, dict[str, Any]]) -> None:
        """Note a held product's candidates as they come; once all are in, start its finish (it waits for its turn).

        Only what ``_start_generate`` and ``_take_job`` will set again, identically, in its turn;
        any doubt (an error, a wrong count) leaves the product to the ordinary path.
        """
        prep = ev.prepared
        early = held.setdefault(id(prep), {"ok": prep.error is None})
        work = prep.work
        if not early["ok"] or "fut" in early:
            return
        if ev.kind == "start":
            for job in work.jobs:
                for cid, cand in zip(job.ids, prep.resumed.get(job.key, ())):
                    work.cands[cid], work.meta[cid] = cand, {"job": job, "generate_s": 0.0, "resumed": True}
        elif ev.kind == "job":
            out = ev.output
            if ev.job is None or not isinstance(out, list) or candidates_problem(ev.job.request.seeds, out):
                early["ok"] = False
                return
            for cid, cand in zip(ev.job.ids, out):
                work.cands[cid] = cand
                work.meta[cid] = {"job": ev.job, "generate_s": ev.seconds / len(out)}
        elif ev.kind == "end":
            early["turn"], early["use"], early["calls"] = threading.Event(), False, LiveCalls()
            early["fut"] = self.pool.submit(cancel.in_context(self._finish), work, early, early["calls"])

    def _finish(self, work: Any, early: dict[str, Any] | None = None, calls: LiveCalls | None = None
                ) -> tuple[list[Any], list[dict[str, Any]] | None, Exception | None]:
        """Score, filter and build the records (in a helper thread, hook calls recorded into ``calls``).

        An early finish scores, then waits for the product's turn: filters see the products one
        after the other, in catalogue order, and the records see the candidates' write times.
        """
        runner = self.runner
        calls = LiveCalls() if calls is None else calls
        self.hooks.record(calls)
        try:
            runner._score(self.ctx, work)
            if early is not None:
                early["turn"].wait()
                if not early["use"]:
                    return calls, None, None  # the product failed in its turn (or the run stopped): dropped
            runner._filter(self.ctx, work)
            records = runner._records(self.ctx, work)
            self.hooks.on_product_done(run=self.ctx, product=work.product, records=records)
            return calls, records, None
        except Exception as exc:
            return calls, None, exc
        finally:
            self.hooks.record(None)

    def close(self) -> None:
        """Wait for the helper threads (a stopped run leaves nothing running)."""
        for early in (self.early or {}).values():
            _release(early, use=False)  # early finishes whose turn will not come stop waiting
        self.pool.shutdown(wait=True, cancel_futures=True)


def _release(early: dict[str, Any] | None, *, use: bool) -> None:
    """An early finish's turn has come: go on (``use``), or drop what it did."""
    if early is not None and "turn" in early:
        early["use"] = use
        early["turn"].set()


def finish_threads(scorers: list[Any]) -> int:
    """Products scored at once: one per scoring actor when every scorer runs on a pool, else 1 (a local
    scorer is called from one thread only)."""
    pools = [getattr(proxy, "pool", None) for _, _, proxy in scorers]
    if not pools or any(p is None for p in pools):
        return 1
    return max(len(p.actors) for p in pools if p is not None)


_FINISH: Any = object()  # _handle's answer at a product's end: score, filter and write it (in the helper thread)


def _handle(runner: Any, ctx: RunContext, ev: Event, st: dict[str, Any]) -> Any:
    """One pipeline event in the caller's thread: None, a failed product's records, or _FINISH at its end."""
    prep, hooks = ev.prepared, runner.hooks
    work, recipe = prep.work, runner.resolved.recipe
    try:
        if ev.kind == "start":
            hooks.replay(prep.hook_calls, run=ctx)
            if prep.error is not None:
                return _failed(runner, ctx, work, prep.error)
            _start_generate(runner, ctx, prep)
        elif ev.kind == "job" and "error" not in st:
            out = ev.output
            if isinstance(out, Exception):
                raise out
            _take_job(runner, ctx, prep, ev, st)
        elif ev.kind == "end":
            if "error" in st:
                return _failed(runner, ctx, work, st["error"])
            ctx.add_time("generate", st["gen_s"])
            work.timings["generate"] = st["gen_s"]
            hooks.on_step_end(run=ctx, step="generate", product=work.product, seconds=st["gen_s"])
            return _FINISH
    except Exception as exc:
        if not isinstance(exc, StageError):
            hooks.on_step_error(run=ctx, step="generate", product=work.product, error=exc)
            exc = StageError("generate", recipe.generate.plugin, work.product, exc)
        if ev.kind == "end":
            return _failed(runner, ctx, work, exc)
        st["error"] = exc  # the product's other jobs still come back; it is reported at its end
    return None


def _start_generate(runner: Any, ctx: RunContext, prep: Prepared) -> None:
    """The generate step begins: candidates read back from disk (resume) count at once."""
    work = prep.work
    runner.hooks.on_step_start(run=ctx, step="generate", product=work.product,
                               total=sum(len(j.ids) for j in work.jobs))
    for job in work.jobs:
        if job.key in prep.resumed:
            for cid, cand in zip(job.ids, prep.resumed[job.key]):
                work.cands[cid], work.meta[cid] = cand, {"job": job, "generate_s": 0.0, "resumed": True}
            runner._advance(ctx, "generate", work.product, len(job.ids))


def _take_job(runner: Any, ctx: RunContext, prep: Prepared, ev: Event, st: dict[str, Any]) -> None:
    """One job's candidates: checked (before anything is stored), kept on the product and written at once."""
    work, job = prep.work, ev.job
    assert job is not None
    out = check_candidates(runner.resolved.recipe.generate.plugin, job.request.seeds, ev.output)
    st["gen_s"] += ev.seconds
    for cid, cand in zip(job.ids, out):
        work.cands[cid] = cand
        work.meta[cid] = {"job": job, "generate_s": ev.seconds / len(out)}
        runner.hooks.on_candidate(run=ctx, record=runner._base_record(work.product, job, cid, cand), image=cand)
    runner._advance(ctx, "generate", work.product, len(out))


def _failed(runner: Any, ctx: RunContext, work: Any, exc: BaseException) -> list[dict[str, Any]]:
    """Hand a failed product to the runner's failure handler; without one, the run stops (fail-fast)."""
    handler = getattr(runner, "_product_failed", None)
    if handler is None:
        raise exc
    return handler(ctx, work, exc)


def _remote_stages(runner: Any) -> Any:
    """Let the executor move masking and scoring to its workers; returns how to undo it, or None."""
    move = getattr(runner.executor, "remote_stages", None)
    if move is None:
        return None
    r, cfg = runner.resolved.recipe, runner.resolved.configs
    specs = {"generate": GeneratorSpec(r.generate.plugin, dict(cfg["generate"].model_dump()), runner.device),
             "mask": GeneratorSpec(r.mask.plugin, dict(cfg["mask"].model_dump()), runner.device),
             "score": [GeneratorSpec(s.plugin, dict(cfg[f"score.{i}"].model_dump()), runner.device)
                       for i, s in enumerate(r.score)]}
    moved = move(specs, base_dir=runner.resolved.base_dir)
    if not moved:
        return None
    old_masker, old_scorers = runner.masker, runner.scorers
    if "mask" in moved:
        runner.masker = moved["mask"]
    if "score" in moved:
        runner.scorers = [(k, w, proxy) for (k, w, _), proxy in zip(old_scorers, moved["score"])]

    def restore() -> None:
        runner.masker, runner.scorers = old_masker, old_scorers
    return restore
