"""Typed path settings are found wherever they sit in a config; the web's path check never lets one out of its roots."""
from __future__ import annotations

import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from ecomforge.pathspec import ImagePattern, ImageSource, LocalPath, ModelRef, PathField, path_fields, walk, walk_config
from ecomforge.recipe.safeyaml import YAMLBudgetError, safe_dump, safe_load
from ecomforge.stages import StageConfig


class Lora(StageConfig):
    path: ModelRef = Field(description="a LoRA")
    scale: float = Field(1.0, description="its weight")


class Sample(StageConfig):
    model: ModelRef = Field("org/default", description="a model")
    background: ImageSource = Field("#ffffff", description="a photo")
    mask: ImagePattern | None = Field(None, description="a pattern")
    loras: list[Lora] = Field(default_factory=list, description="LoRAs")
    extra: dict[str, LocalPath] = Field(default_factory=dict, description="named files")
    pair: tuple[ImageSource, ...] = Field((), description="photos")
    steps: int = Field(20, description="not a path")
    note: str = Field("", description="not a path either")


def test_declared_fields_are_listed_with_their_kind():
    kinds = {loc: f.kind for loc, f in path_fields(Sample)}
    assert kinds == {"model": "model", "background": "image", "mask": "image", "loras[].path": "model",
                     "extra{}": "file", "pair[]": "image"}
    assert dict(path_fields(Sample))["mask"].pattern


def test_walk_finds_set_values_and_marks_defaults():
    cfg = Sample.model_validate({"model": "org/default", "background": "/a.png", "mask": "/m/{stem}.png",
                                 "loras": [{"path": "/l.safetensors"}], "extra": {"x": "/x"}, "pair": ["/p"],
                                 "note": "/not/a/path"})
    found = {f.loc: (f.value, f.default) for f in walk_config(cfg)}
    assert found == {"model": ("org/default", True), "background": ("/a.png", False), "mask": ("/m/{stem}.png", False),
                     "loras.0.path": ("/l.safetensors", False), "extra.x": ("/x", False), "pair.0": ("/p", False)}
    # the model is the plugin's default (named or not); the note is no path at all


@given(st.lists(st.text(max_size=20), max_size=5), st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=4))
def test_walk_reaches_every_string_in_containers(items, named):
    raw = {"pair": items, "extra": named, "loras": [{"path": v} for v in items]}
    found = [(f.loc, f.value) for f in walk(Sample, raw)]
    assert [v for loc, v in found if loc.startswith("pair.")] == items
    assert sorted(v for loc, v in found if loc.startswith("extra.")) == sorted(named.values())
    assert [v for loc, v in found if loc.startswith("loras.")] == items


def test_literal_values_are_not_paths():
    field = PathField("image", literal=r"#?[0-9a-fA-F]{6}|(linear|radial):.*")
    assert field.is_literal("#a0b0c0") and field.is_literal("linear:#000000:#ffffff")
    assert not field.is_literal("/etc/#a0b0c0")


PARTS = st.sampled_from(["..", ".", "uploads", "masks", "ref-01.png", "{stem}", "~", "x", "", "link", "%2e%2e",
                         "..\\..", "etc", "passwd"])


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("trust")
    (base / "job" / "uploads" / "masks").mkdir(parents=True)
    (base / "outside").mkdir()
    os.symlink(base / "outside", base / "job" / "uploads" / "link")  # a link out of the uploads folder
    return base


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(PARTS, max_size=6), absolute=st.booleans(), pattern=st.booleans())
def test_the_path_check_never_leaves_its_roots(roots, parts, absolute, pattern):
    from ecomforge.web.trust import _inside

    uploads = roots / "job" / "uploads"
    text = "/".join(parts)
    value = f"{uploads}/{text}" if absolute else text
    real = _inside(value, [uploads], pattern=pattern)
    if real is not None:
        assert real.is_relative_to(uploads) and os.path.realpath(real) == str(real)
    if absolute and parts[:1] == ["link"]:
        assert real is None  # through the link: outside, whatever follows


@settings(max_examples=50)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
                    max_leaves=30))
def test_safe_load_reads_what_yaml_reads(value):
    """What ecomforge writes (safe_dump: a run's recipe.yaml) reads back as it was, by safe_load and PyYAML alike:
    text such as '0E0' (a float to the core schema, text to PyYAML's resolver) is quoted."""
    text = safe_dump({"v": value})
    assert safe_load(text) == {"v": value} == yaml.safe_load(text)


@given(st.integers(min_value=2, max_value=12), st.integers(min_value=2, max_value=9))
def test_alias_bombs_are_refused_on_the_node_graph(depth, width):
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth)]
    text = "\n".join(lines) + "\n"
    sizes = [1 + width]
    for _ in range(1, depth):
        sizes.append(1 + width * sizes[-1])
    expanded = 1 + depth + sum(sizes)  # the mapping, its keys, every list with its aliases expanded
    aliases = width * (depth - 1)
    if expanded > 1000 or aliases > 20:
        with pytest.raises(YAMLBudgetError):
            safe_load(text, max_aliases=20, max_nodes=1000)
    else:
        assert len(safe_load(text, max_aliases=20, max_nodes=1000)) == depth
