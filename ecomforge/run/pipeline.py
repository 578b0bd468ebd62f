"""The product pipeline: products stream through prepare → generate → finish, their stages overlapping.

While one product generates, the next ones are acquired and masked (in helper threads, a bounded
look-ahead) and the previous one is scored, filtered and written (in the caller's thread, which
runs every hook). All generation jobs of a run go through ONE ``executor.map`` call, so a pool of
workers sees the jobs of several products at once. Ids and pixels do not depend on any of this:
each id comes from the product's own references, masks and parameters, and every generator call
gets the same request as in a product-by-product loop.
"""
from __future__ import annotations

import inspect
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..stages import Executor, GenerationJob, GeneratorSpec
from ..types import Candidate
from . import cancel


@dataclass
class Prepared:
    """A product after its prepare step: what it computed (``work``), hook calls to replay, or its error."""

    product: str
    work: Any = None
    hook_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: BaseException | None = None
    resumed: dict[str, list[Candidate]] = field(default_factory=dict)  # job key -> candidates read from disk


@dataclass
class Event:
    """What the pipeline hands to the caller: ``start`` and ``end`` of a product, or one finished ``job``."""

    kind: str
    prepared: Prepared
    job: GenerationJob | None = None
    output: list[Candidate] | Exception | None = None
    seconds: float = 0.0


class RecordingHooks:
    """A hook relay that, in a thread where recording is on, records calls instead of running them.

    Helper threads (and Ray workers) prepare products; their hook calls (progress, references and
    masks written by the run store) are replayed in the caller's thread, in order, so plugins never
    see two threads.
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self._local = threading.local()

    def record(self, into: list[tuple[str, dict[str, Any]]] | None) -> None:
        """Start (a list) or stop (None) recording in the current thread."""
        self._local.into = into

    def __getattr__(self, name: str) -> Callable[..., Any]:
        into = getattr(self._local, "into", None)
        if into is None:
            return getattr(self._real, name)
        return lambda **kwargs: into.append((name, kwargs))

    def replay(self, calls: list[tuple[str, dict[str, Any]]], **replace: Any) -> None:
        """Run recorded calls on the real hooks (``replace`` swaps arguments, e.g. the run context)."""
        for name, kwargs in calls:
            getattr(self._real, name)(**{**kwargs, **{k: v for k, v in replace.items() if k in kwargs}})


def stream(products: Iterable[tuple[str, Any]], prepare: Callable[[str, Any], Prepared], executor: Executor,
           spec: GeneratorSpec, *, lookahead: int = 2, threads: int = 1,
           resumed: Callable[[GenerationJob], list[Candidate] | None] = lambda job: None) -> Generator[Event, None, None]:
    """Events of every product, in catalogue order per product; jobs of the next products run meanwhile.

    ``prepare`` runs in ``threads`` helper threads, at most ``lookahead`` products ahead of generation
    (the back-pressure: memory stays bounded for any catalogue length). ``resumed`` returns a job's
    candidates already on disk (``--resume``): such jobs are not sent to the executor.
    """
    ahead: queue.Queue[Future[Prepared] | None] = queue.Queue(maxsize=max(1, lookahead))
    pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="ecomforge-prepare")
    stop = threading.Event()
    feeder = threading.Thread(target=cancel.in_context(_feed), args=(products, prepare, pool, ahead, stop),
                              name="ecomforge-feed", daemon=True)
    feeder.start()
    entered: queue.SimpleQueue[Prepared] = queue.SimpleQueue()  # products whose jobs entered the stream

    def jobs() -> Iterator[GenerationJob]:  # pulled by the executor, possibly from its own thread
        while (fut := ahead.get()) is not None:
            cancel.check()
            prep = fut.result()
            for job in prep.work.jobs if prep.error is None else ():
                if (done := resumed(job)) is not None:
                    prep.resumed[job.key] = done
            entered.put(prep)
            if prep.error is None:
                yield from (job for job in prep.work.jobs if job.key not in prep.resumed)

    kwargs = {"isolate": True} if "isolate" in inspect.signature(executor.map).parameters else {}
    try:
        yield from _events(entered, executor.map(spec, jobs(), **kwargs))
    finally:
        stop.set()
        while feeder.is_alive():  # unblock a feeder waiting on a full queue
            try:
                ahead.get(timeout=0.1)
            except queue.Empty:
                pass
        pool.shutdown(wait=True, cancel_futures=True)


def _feed(products: Iterable[tuple[str, Any]], prepare: Callable[[str, Any], Prepared], pool: ThreadPoolExecutor,
          ahead: queue.Queue[Any], stop: threading.Event) -> None:
    """Submit prepare() calls in catalogue order; the bounded queue blocks when far enough ahead."""
    try:
        for product, specs in products:
            if stop.is_set():
                return
            # each call in its own copy of this thread's context: the run's cancel token goes with it
            if not _put(ahead, pool.submit(cancel.in_context(_safe_prepare), prepare, product, specs), stop):
                return
    finally:
        _put(ahead, None, stop)


def _events(entered: queue.SimpleQueue[Prepared], results: Iterator[tuple[GenerationJob, Any]]) -> Iterator[Event]:
    """Match results (in any order) to their products; per product: start, its jobs, end, one product after another.

    Only the oldest unfinished product is open: results of later products wait (at most the executor's
    in-flight window) until it has ended, so hooks see each product's steps in order, as without overlap.
    """
    import time

    owner: dict[str, Prepared] = {}  # job key in flight -> its product
    left: dict[int, int] = {}  # id(product) -> jobs still out
    held: dict[int, list[Event]] = {}  # id(product) -> job events waiting for it to open
    line: list[Prepared] = []  # products entered and not ended, oldest (the open one) first
    t0 = time.perf_counter()

    def admit() -> Iterator[Event]:
        while not entered.empty():
            prep = entered.get()
            out = [j for j in prep.work.jobs if j.key not in prep.resumed] if prep.error is None else []
            left[id(prep)], held[id(prep)] = len(out), []
            owner.update((j.key, prep) for j in out)
            line.append(prep)
            if len(line) == 1:
                yield Event("start", prep)
        while line and left[id(line[0])] == 0:
            done = line.pop(0)
            del left[id(done)], held[id(done)]
            yield Event("end", done)
            if line:  # the next product opens: its start, then whatever of it already came back
                yield Event("start", line[0])
                yield from held[id(line[0])]
                held[id(line[0])] = []

    for job, out in results:
        now = time.perf_counter()
        yield from admit()
        prep = owner.pop(job.key)
        ev = Event("job", prep, job, out, now - t0)
        left[id(prep)] -= 1
        if prep is line[0]:
            yield ev
        else:
            held[id(prep)].append(ev)
        yield from admit()
        t0 = time.perf_counter()
    yield from admit()


def _safe_prepare(prepare: Callable[[str, Any], Prepared], product: str, specs: Any) -> Prepared:
    """prepare(), with an exception kept on the product (reported in the caller's thread, in order)."""
    try:
        return prepare(product, specs)
    except Exception as exc:
        return Prepared(product, error=exc)


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    while True:
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            if stop.is_set():
                return False
