"""The default executor: generation jobs run in this process, one batched call per job, I/O overlapped."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import Field

from ..plugins import Registry, get_registry
from ..stages import Executor, GenerationJob, Generator, GeneratorSpec, StageConfig
from ..types import Candidate, GenerationRequest
from . import cancel

_DONE = object()  # end of the job stream, put by the generation thread


class LocalExecutor(Executor):
    """Runs jobs here, in order, with the run's one generator; the next call runs while results are written."""

    name = "local"
    default = True  # what a recipe without an `execute:` step uses

    class Config(StageConfig):
        """How far generation may run ahead of the code that writes its results."""

        prefetch: int = Field(
            default=1, ge=0, le=8,
            description="Finished jobs that may wait to be written while the next generation call runs "
                        "(memory: about this many jobs' images more). 0: no background thread, each call "
                        "waits until the previous results are written.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.registry: Registry | None = None
        self.generator: Generator | None = None

    def attach(self, *, registry: Registry | None = None, generator: Generator | None = None) -> None:
        """Use the run's registry and generator instance (one model copy per run, not one per executor)."""
        self.registry = registry or self.registry
        self.generator = generator or self.generator

    def map(self, spec: GeneratorSpec, jobs: Iterable[GenerationJob], *,
            isolate: bool = False) -> Iterator[tuple[GenerationJob, list[Candidate] | Exception]]:
        """Yield each job's candidates, in job order, as soon as its batched call returns.

        With ``isolate``, a job whose call raises yields the exception as its output and the next
        jobs still run (the runner records that product as failed); without, the exception ends the map.
        """
        generator = self._generator(spec)
        call = _isolated(generator) if isolate else generator.generate
        if self.config.prefetch == 0:
            for job in jobs:
                cancel.check()
                yield job, call(job.request)
            return
        yield from _ahead(call, iter(jobs), self.config.prefetch)

    def _generator(self, spec: GeneratorSpec) -> Generator:
        gen = self.generator
        if gen is None or gen.name != spec.plugin:  # no runner attached (direct use): build one, once
            registry = self.registry or get_registry()
            gen = registry.create("generator", spec.plugin, spec.config, device=spec.device)
            self.generator = gen
        assert isinstance(gen, Generator)
        gen.ensure_setup()
        return gen


def _isolated(generator: Generator) -> Callable[[GenerationRequest], Any]:
    """generate(), returning an exception instead of raising it."""
    def call(request: GenerationRequest) -> Any:
        try:
            return generator.generate(request)
        except Exception as exc:
            return exc
    return call


def _ahead(call: Callable[[GenerationRequest], Any], jobs: Iterator[GenerationJob],
           depth: int) -> Iterator[tuple[GenerationJob, Any]]:
    """Generate in a worker thread, at most ``depth`` results ahead of the consumer (the caller's thread).

    The consumer (the runner: PNG encoding, manifest, hooks) and the model call overlap: torch, PIL's
    zlib and file writes release the GIL. Calls stay in job order on one thread, so ids and pixels are
    those of the sequential loop. Hooks keep running in the caller's thread.
    """
    out: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for job in jobs:
                if stop.is_set():
                    return
                cancel.check()  # a cancelled run starts no further call (the token is in this thread's context)
                item: Any = (job, call(job.request))
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # handed to the consumer, raised there
            out.put(exc)
            return
        out.put(_DONE)

    # The thread's own token, a child of the run's: a consumer that stops early ends the call in flight too.
    token = cancel.CancelToken(parent=cancel.current())
    thread = threading.Thread(target=cancel.in_context(cancel.run_under(token, work)), name="ecomforge-generate",
                              daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):  # the thread's own failure, not an isolated job's
                raise item
            yield item
    finally:
        stop.set()  # a stopped consumer (error, Ctrl-C, early exit) stops the thread: no further call,
        token.cancel("stopped")  # and the call in flight ends at its next cancel check
        while thread.is_alive():
            try:
                out.get(timeout=0.1)
            except queue.Empty:
                pass
