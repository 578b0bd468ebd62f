"""The Python examples of docs/writing-plugins.md run as written, so a plugin author can copy any of them.

The convention: every ```python block of the page is a module of its own (its imports included) and runs.
A block that is not meant to run takes another fence (```text). Each block is imported; then its contract
test classes (``class TestX(ScorerContract)``) and ``test_*`` functions run, and every stage class it
defines goes through its kind's contract, with the inputs ``CONTRACT_INPUTS`` gives where the defaults do not
fit. ruff's pyflakes rules run over every block too, for names used only in code no test reaches.
"""
from __future__ import annotations

import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from ecomforge.imaging.io import png_bytes
from ecomforge.stages import Stage
from ecomforge.testing import (
    AcquirerContract,
    FilterContract,
    GeneratorContract,
    MaskerContract,
    ScorerContract,
    make_reference,
    sample_image,
)
from ecomforge.types import Candidate, Mask, Reference, ScoringContext

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "writing-plugins.md"
CONTRACTS: dict[str, type] = {"acquirer": AcquirerContract, "masker": MaskerContract, "generator": GeneratorContract,
                              "scorer": ScorerContract, "filter": FilterContract}
# Modules a block may import that are installed separately (the example plugin, the first-party plugins).
OPTIONAL = ("ecomforge_sharpness", "ecomforge_classic")


def blocks(page: Path = PAGE) -> list[tuple[int, str]]:
    """(first line, code) of every ```python block of a Markdown page."""
    text = page.read_text(encoding="utf-8")
    return [(text[:m.start(1)].count("\n") + 1, m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)]


def _png_specs(tmp_path: Path) -> list[str]:
    for seed in (1, 2):
        (tmp_path / f"photo{seed}.png").write_bytes(png_bytes(sample_image(seed=seed)[0]))
    return ["photo2.png", "photo1.png"]


def _green_screen() -> Reference:
    ref, mask = make_reference()
    image = ref.image.copy()
    image[mask.data == 0] = (20, 200, 30)
    return Reference(image, "green.png", ref.sha256, name="green")


def _sharp_then_blurred(ref: Reference, mask: Mask) -> list[Candidate]:
    blurred = cv2.GaussianBlur(ref.image, (0, 0), 2)
    return [Candidate(ref.image, 0, {}, mask=mask.data), Candidate(blurred, 1, {}, mask=mask.data)]


# Stage name -> contract attributes, for the doc's stages whose inputs the contract's defaults do not fit.
CONTRACT_INPUTS: dict[str, dict[str, Any]] = {
    "files": {"make_specs": lambda self, tmp_path: _png_specs(tmp_path)},
    "chroma": {"make_reference": lambda self: _green_screen()},
    "flat": {"sweep_point": {"colour": [0, 0, 0]}},
    "sharpness": {"make_candidates": lambda self, ref, mask: _sharp_then_blurred(ref, mask)},
}


def _scores_a_reference_without_detail(scorer: Any) -> None:
    """A plain grey reference (no edges, no texture) is a reference too: no division by its zero measure."""
    ref, mask = make_reference()
    flat = Reference(np.full_like(ref.image, 128), "flat.png", ref.sha256, name="flat")
    values = scorer.score([Candidate(ref.image, 0, {}, mask=mask.data)], ScoringContext((flat,), (mask,)))
    assert len(values) == 1 and 0.0 <= float(values[0]) <= 1.0


def _run_tests(obj: Any, tmp_path: Path) -> list[str]:
    """Call every ``test_*`` method of ``obj`` (``tmp_path`` where asked for); the names of those that ran."""
    ran = []
    for name in sorted(n for n in dir(obj) if n.startswith("test_")):
        method = getattr(obj, name)
        kwargs = {"tmp_path": tmp_path / name} if "tmp_path" in inspect.signature(method).parameters else {}
        for folder in kwargs.values():
            folder.mkdir(parents=True)
        try:
            method(**kwargs)
        except pytest.skip.Exception:
            continue
        ran.append(name)
    return ran


def _import(code: str, line: int, tmp_path: Path) -> Any:
    name = f"writing_plugins_line{line}"
    path = tmp_path / f"{name}.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves a Config's annotations through the module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        if exc.name in OPTIONAL:
            pytest.skip(f"{exc.name} is not installed")
        raise
    finally:
        sys.modules.pop(name, None)
    return module


@pytest.mark.parametrize("line, code", blocks(), ids=[f"line{line}" for line, _ in blocks()])
def test_example_runs(line, code, tmp_path):
    module = _import(code, line, tmp_path)
    ran = []
    for name, obj in list(vars(module).items()):
        if getattr(obj, "__module__", None) != module.__name__:
            continue  # imported, not the block's own
        if inspect.isfunction(obj) and name.startswith("test_"):
            (tmp_path / name).mkdir()
            obj(tmp_path / name)
            ran.append(name)
        elif inspect.isclass(obj) and issubclass(obj, tuple(CONTRACTS.values())):
            ran += _run_tests(obj(), tmp_path / name)
        elif inspect.isclass(obj) and issubclass(obj, Stage) and obj.kind in CONTRACTS:
            contract = type(f"Test{name}", (CONTRACTS[obj.kind],),
                            {"make_stage": lambda self, cls=obj: cls(), **CONTRACT_INPUTS.get(obj.name, {})})
            ran += _run_tests(contract(), tmp_path / name)
            if obj.kind == "scorer":
                _scores_a_reference_without_detail(obj())
    if re.search(r"^(class Test|def test_|class \w+\((Acquirer|Masker|Generator|Scorer|Filter)\))", code, re.M):
        assert ran, "the block defines tests or stages, and none of them ran"


def test_every_example_names_only_what_it_defines_or_imports(tmp_path):
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    for line, code in blocks():
        (tmp_path / f"line{line}.py").write_text(code, encoding="utf-8")
    res = subprocess.run([ruff, "check", "--no-cache", "--isolated", "--select", "F", "--output-format", "concise",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_convention_finds_the_examples():
    found = [code for _, code in blocks()]
    assert len(found) >= 10 and any("class FlatGenerator(Generator)" in code for code in found)
    assert not [code for code in found if re.search(r"^\s*\.\.\.\s*$", code, re.M)], "a block leaves code out"
