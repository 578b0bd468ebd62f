"""The stage ABCs: one abstract method each, a nested pydantic ``Config``, weights loaded lazily."""
from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import RecipeError
from .types import Candidate, Decision, GenerationRequest, Mask, Reference, Score, Scored, ScoringContext


class StageConfig(BaseModel):
    """Base of every plugin's ``Config``: unknown keys are rejected, every field is described, and a number is
    finite (NaN or infinity would pass every bound and end as invalid JSON in the manifest)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Stage:
    """A configured plugin instance. Constructing one is cheap; ``setup()`` loads weights once."""

    # Not itself abstract: each kind below is the ABC, with its one abstract method.
    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    Config: ClassVar[type[StageConfig]] = StageConfig
    # True for the plugin a recipe gets when it leaves this kind's step out (acquire, filter, execute):
    # defaults come from what plugins declare, so the core names no plugin.
    default: ClassVar[bool] = False

    def __init__(self, config: StageConfig | dict[str, Any] | None = None, *, device: str = "auto",
                 path: str = "config") -> None:
        self.config = self.parse_config(config, path=path)
        self.device = device
        self.base_dir: Path | None = None  # the recipe's folder, set by the runner
        self._ready = False
        self._lock = threading.Lock()

    @classmethod
    def parse_config(cls, config: StageConfig | dict[str, Any] | None, *, path: str = "config") -> Any:
        """Validate a config dict against ``Config``; errors name the key path, value and reason."""
        if isinstance(config, cls.Config):
            return config
        try:
            return cls.Config.model_validate(dict(config or {}))
        except ValidationError as exc:
            raise config_error(exc, path, cls.Config) from exc

    def ensure_setup(self) -> None:
        """Run ``setup()`` once, thread-safely."""
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                self.setup()
                self._ready = True

    def setup(self) -> None:
        """Load models and do heavy imports; the default does nothing."""

    def check(self) -> None:
        """Fail fast, before any work, if a file this stage needs is missing (cheap: no weights load)."""

    def identity(self) -> dict[str, str]:
        """Model ids (and weight hashes where known) for the manifest; override when weights are used."""
        return {}


def config_error(exc: ValidationError, path: str, model: type[BaseModel]) -> RecipeError:
    """Turn a pydantic error into a RecipeError naming the first bad key, its value and a hint."""
    import difflib

    errors = exc.errors()
    # A value that may be one of several shapes (a list of seeds or {count, base}) fails once per
    # shape; the branch whose error lies deepest is the one the user meant to write.
    errors = sorted(errors, key=lambda e: -len(_keys(e["loc"])))
    # An unknown key explains a "field required" next to it (a misspelt key): report it first.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = ".".join(_keys(err["loc"]))
    full = f"{path}.{loc}" if path and loc else (loc or path)
    hint = None
    if err["type"] == "extra_forbidden":
        owner = _model_at(model, _keys(err["loc"])[:-1]) or model
        known = list(owner.model_fields)
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        hint = (f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}" if known
                else "this plugin takes no settings")
        return RecipeError(full, "unknown key", hint=hint)
    keys = _keys(err["loc"])
    if err["type"] == "missing" and isinstance(err["loc"][-1], int):  # a fixed-length tuple given too few values
        parent = err["loc"][:-1]
        short = [e for e in errors if e["type"] == "missing" and tuple(e["loc"][:-1]) == tuple(parent)]
        given = min(int(e["loc"][-1]) for e in short)
        whole = ".".join(keys[:-1])
        return RecipeError(f"{path}.{whole}" if path and whole else (whole or path),
                           f"expected {given + len(short)} values (got {given})")
    message = _plain_message(err)
    value = err.get("input")
    if err["type"] == "string_type" and isinstance(value, (dict, list)):
        # `{type}` or `[a]` unquoted in YAML (or --set) is a mapping or a list, not the text it looks like
        return RecipeError(full, f"{message} (got a {'mapping' if isinstance(value, dict) else 'list'})",
                           hint="quote text that starts with { or [: --set 'key=\"{type}\"', or key: \"{type}\"")
    if err["type"] == "list_type" and isinstance(value, str) and value.lstrip().startswith("[") and "#" in value:
        return RecipeError(full, f"{message} (got the text {value[:80]!r})",
                           hint="inside [...] a # starts a YAML comment: quote each colour, "
                                "--set 'key=[\"#ffffff\", \"#f4efe6\"]'")
    if isinstance(value, (dict, list)) or err["type"] in ("value_error", "assertion_error", "missing"):
        return RecipeError(full, message)  # the message already says what is wrong with the whole value
    shown = repr(value)
    return RecipeError(full, f"{message} (got {shown[:80]}{'...' if len(shown) > 80 else ''})")


def _model_at(model: type[BaseModel], keys: list[str]) -> type[BaseModel] | None:
    """The (nested) model that holds the key at ``keys`` (list indices skipped), for a did-you-mean."""
    import typing

    def models_in(annotation: Any) -> list[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for arg in typing.get_args(annotation) for m in models_in(arg)]

    for key in keys:
        if key.isdigit():
            continue
        field = model.model_fields.get(key)
        found = [m for m in models_in(field.annotation)] if field is not None else []
        if not found:
            return None
        model = found[0]
    return model


def _keys(loc: Any) -> list[str]:
    """A pydantic error location without its union-branch tags (``list[int]``, ``SeedRange``)."""
    return [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p[:1].isupper()))]


def _plain_message(err: Any) -> str:
    """Pydantic's message without its 'Value error, ' / 'Assertion failed, ' prefixes."""
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


class Acquirer(Stage, ABC):
    """Turns a references spec (files, folders, globs, URLs) into ``Reference`` objects."""

    kind = "acquirer"

    @abstractmethod
    def acquire(self, specs: Sequence[str], *, product: str, base_dir: Path) -> list[Reference]:
        """Load every image the specs name, in a deterministic order."""

    def count(self, specs: Sequence[str], *, base_dir: Path, limit: int) -> int | None:
        """How many references ``specs`` name, without reading or decoding them, counting no further than
        ``limit + 1``: limits are checked when the recipe is read. None (the default): not known before acquiring."""
        return None


class Masker(Stage, ABC):
    """Finds the product region of a reference."""

    kind = "masker"
    # The prompts this masker takes, each mapped to the Config key that carries it, so a UI can offer
    # the right inputs without knowing plugin names: "text" (what the product is), "points" ([[x, y], ...]
    # in reference pixels), "point_labels" (1 product / 0 background, one per point), "box"
    # ([x0, y0, x1, y1]), "mask" (the path of a mask file the user uploads). Empty: it needs none.
    accepts: ClassVar[Mapping[str, str]] = {}

    @abstractmethod
    def mask(self, reference: Reference) -> Mask:
        """Return the product mask for one reference (raise ``NothingFound`` rather than guess)."""


class Generator(Stage, ABC):
    """Makes new images of the product; one candidate per seed in the request."""

    kind = "generator"

    @abstractmethod
    def generate(self, request: GenerationRequest) -> list[Candidate]:
        """Generate one candidate per seed of ``request.seeds``, in that order."""

    def describe(self, config: Any) -> dict[str, Any]:
        """The parameters that define an output, for ids and PNG text (defaults to the whole config)."""
        return config.model_dump(mode="json")

    @classmethod
    def work_pixels(cls, config: Any, reference: tuple[int, int]) -> int | None:
        """The most pixels one candidate of ``config`` makes or is worked on at, from a reference of
        (width, height): what limits checked before any work count (the web server's pixel limit).

        None (the default): not declared; the server then reads the config's ``size`` ([w, h]),
        ``canvas`` ('WxH' or 'a:b') and ``*_side`` settings. A generator whose output size comes from
        other settings should declare it, or a request could ask for more pixels than the operator allows.
        """
        return None


def candidate_pixels(cls: type[Generator], config: Any, reference: tuple[int, int]) -> int:
    """The pixels one candidate of ``config`` costs from a reference of (width, height): what the generator declares
    (``Generator.work_pixels``), else what its ``size`` ([w, h]), ``canvas`` (canvas_pixels()) and ``*_side``
    settings ask for, else the reference's own size."""
    declared = cls.work_pixels(config, reference)
    if declared is not None:
        return int(declared)
    values = config.model_dump() if isinstance(config, BaseModel) else dict(config)
    pixels = 0
    size = values.get("size")
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size):
        pixels = int(size[0]) * int(size[1])
    canvas = values.get("canvas")
    if isinstance(canvas, str):
        pixels = max(pixels, canvas_pixels(canvas, reference))
    for key, value in values.items():
        if key.endswith("_side") and isinstance(value, int) and not isinstance(value, bool):
            pixels = max(pixels, value * value)
    return pixels or reference[0] * reference[1]


CANVAS_SIZE = re.compile(r"(\d+)\s*x\s*(\d+)")
CANVAS_ASPECT = re.compile(r"(\d+)\s*:\s*(\d+)")


def canvas_pixels(canvas: str, reference: tuple[int, int]) -> int:
    """Pixels of a 'WxH' canvas, or of an 'a:b' one around a reference of (width, height): the smallest canvas of
    that aspect holding it (as ``ecomforge-diffusers`` lays it out), so '99:1' around a 1000x1000 photo is
    99000x1000. 0 for a text that is no canvas (the generator's own validation says so)."""
    text = canvas.strip().lower()
    if m := CANVAS_SIZE.fullmatch(text):
        return int(m.group(1)) * int(m.group(2))
    m = CANVAS_ASPECT.fullmatch(text)
    if m is None or not int(m.group(1)) or not int(m.group(2)):
        return 0
    aspect = int(m.group(1)) / int(m.group(2))
    width = max(reference[0], reference[1] * aspect)
    return round(width) * round(width / aspect)


class Scorer(Stage, ABC):
    """Rates how faithfully each candidate shows the product: floats in [0,1], higher is better."""

    kind = "scorer"

    @abstractmethod
    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> Sequence[float | Score]:
        """One score in [0,1] per candidate, in order: a float, or a ``Score`` that also says why it is low."""


class Filter(Stage, ABC):
    """Chooses which scored candidates to keep, and says why."""

    kind = "filter"

    @abstractmethod
    def select(self, scored: Sequence[Scored]) -> list[Decision]:
        """One decision per scored candidate, in order."""

    @classmethod
    def reads_scores(cls, config: Any) -> dict[str, str]:
        """The score keys this config names, by config key path (``{"min_scores.seams": "seams"}``).

        Validation refuses a recipe in which one of them is no scorer's key (a misspelt key would
        otherwise drop every candidate as missing that score). None by default: an empty dict.
        """
        return {}


def reads_problem(value: Any) -> str | None:
    """What is wrong with what ``Filter.reads_scores`` returned (a dict of config key -> score name), or None."""
    if not isinstance(value, dict):
        return f"reads_scores() returned a {type(value).__name__}; it returns a dict of config key -> score name"
    bad = next(((k, v) for k, v in value.items() if not isinstance(k, str) or not isinstance(v, str)), None)
    if bad is not None:
        return f"reads_scores() returned {bad[0]!r}: {bad[1]!r}; both sides are str"
    return None


@dataclass(frozen=True)
class GeneratorSpec:
    """How to build the generator in any process: plugin name, config dict and device."""

    plugin: str
    config: dict[str, Any]
    device: str = "auto"


@dataclass(frozen=True)
class GenerationJob:
    """One batched generator call: a request plus the candidate ids its seeds will get."""

    key: str
    product: str
    request: GenerationRequest
    ids: tuple[str, ...]


class Executor(Stage, ABC):
    """Decides where generation jobs run; yields results as they complete, in any order."""

    kind = "executor"

    @abstractmethod
    def map(self, spec: GeneratorSpec,
            jobs: Iterable[GenerationJob]) -> Iterator[tuple[GenerationJob, list[Candidate] | Exception]]:
        """Run every job once and yield (job, candidates) as each finishes.

        ``jobs`` may be lazy (the pipeline feeds jobs as products are masked). An executor may also
        take a keyword ``isolate=True``: a job whose call raises then yields its exception as the
        output, hence the ``Exception`` in the return type; without it an exception ends the map.
        """

    def attach(self, *, registry: Any = None, generator: Generator | None = None) -> None:
        """Receive the run's plugin registry and generator before the first map(); the default ignores them."""

    def close(self) -> None:  # optional hook
        """Release workers (called once at the end of a run); the default does nothing."""


class Trainer(Stage, ABC):
    """Fine-tunes a generator's model on a product's references."""

    kind = "trainer"

    @abstractmethod
    def train(self, references: Sequence[Reference], output_dir: Path) -> Path:
        """Train and return the path of the produced weights."""


STAGE_KINDS: dict[str, type[Stage]] = {
    cls.kind: cls for cls in (Acquirer, Masker, Generator, Scorer, Filter, Executor, Trainer)
}
