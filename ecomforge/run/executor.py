"""The default executor: generation jobs run in this process, one batched call per job."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..plugins import get_registry
from ..stages import Executor, GenerationJob, Generator, GeneratorSpec, StageConfig
from ..types import Candidate


class LocalExecutor(Executor):
    """Runs jobs here, in order, reusing one generator (and its cached weights) for all of them."""

    name = "local"

    class Config(StageConfig):
        """No settings: the local executor runs everything in the calling process."""

    def map(self, spec: GeneratorSpec, jobs: Sequence[GenerationJob]) -> Iterator[tuple[GenerationJob, list[Candidate]]]:
        """Yield each job's candidates as soon as its batched call returns."""
        generator = get_registry().create("generator", spec.plugin, spec.config, device=spec.device)
        assert isinstance(generator, Generator)
        generator.ensure_setup()
        for job in jobs:
            yield job, generator.generate(job.request)
