"""Settings forms come from plugins' config schemas; the mask preview runs a real masker."""
from __future__ import annotations

import enum
from typing import Literal

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field

from ecomforge import hookimpl
from ecomforge.stages import Generator, StageConfig
from ecomforge.web.forms import FieldSpec, coerce, form_fields


class Sampler(str, enum.Enum):
    euler = "euler"
    ddim = "ddim"


class NewGenerator(Generator):
    """A plugin the UI has never heard of."""

    name = "brand-new"

    class Config(StageConfig):
        steps: int = Field(20, ge=1, le=200, description="Denoising steps.")
        sharpness_boost: float = Field(0.5, ge=0, le=1, description="How much sharper.")
        tiled: bool = Field(False, description="Tile the canvas.")
        mood: Literal["calm", "loud"] = Field("calm", description="The mood.")
        sampler: Sampler = Field(Sampler.euler, description="Sampler.")
        model: str | None = Field(None, description="Model id.")
        size: list[int] = Field(default_factory=lambda: [64, 64], description="Not a form field.")

    def generate(self, request):
        """Unused."""
        raise NotImplementedError


class NewPlugin:
    @hookimpl
    def register_generators(self, register):
        register(NewGenerator)


def test_form_fields_from_schema():
    fields = {f.name: f for f in form_fields(NewGenerator.Config.model_json_schema())}
    assert list(fields)[0] == "steps"  # key settings first
    assert set(fields) == {"steps", "sharpness_boost", "tiled", "mood", "sampler", "model"}  # the list is left out
    assert (fields["steps"].kind, fields["steps"].minimum, fields["steps"].maximum, fields["steps"].default) == \
        ("integer", 1, 200, 20)
    assert fields["sharpness_boost"].kind == "number" and fields["tiled"].kind == "boolean"
    assert fields["mood"].choices == ("calm", "loud") and fields["sampler"].choices == ("euler", "ddim")
    assert fields["model"].kind == "string" and fields["model"].optional


@given(st.one_of(st.none(), st.floats(-1e6, 1e6), st.integers(-10**6, 10**6), st.text(max_size=5), st.booleans()))
def test_coerce_gives_the_field_type_or_none(value):
    for kind in ("integer", "number", "boolean", "string", "enum"):
        f = FieldSpec("x", kind, "x", "", None, optional=True)
        try:
            out = coerce(f, value)
        except (TypeError, ValueError):
            assert kind in ("integer", "number")  # text that is not a number is refused, not passed on
            continue
        expected = {"integer": int, "number": float, "boolean": bool, "string": str, "enum": object}[kind]
        assert out is None or isinstance(out, expected)


def test_new_plugin_options_appear_in_the_ui(toy_registry, tmp_path, recipes_dir):
    from ecomforge.testing import temporary_plugins
    from ecomforge.web.manager import JobManager
    from ecomforge.web.ui import build_ui
    from ecomforge.web.uploads import Limits

    import toyplugins

    with temporary_plugins(toyplugins, NewPlugin()):
        manager = JobManager(tmp_path / "runs")
        demo = build_ui(manager, recipes_dir, Limits())
        manager.store.close()
    labels = {c.get("props", {}).get("label") for c in demo.config["components"]}
    assert {"sharpness_boost", "tiled", "mood", "sampler", "model", "level", "delay"} <= labels
    assert "size" not in labels
    mood = next(c for c in demo.config["components"] if c.get("props", {}).get("label") == "mood")
    assert [ch[1] if isinstance(ch, (list, tuple)) else ch for ch in mood["props"]["choices"]] == ["calm", "loud"]


def test_mask_preview_with_the_classic_masker(toy_registry, tmp_path):
    from ecomforge.web.preview import masker_config, preview_mask
    from ecomforge.web.uploads import Limits

    from webhelpers import png_bytes

    path = tmp_path / "ref.png"
    path.write_bytes(png_bytes(2, (160, 120)))
    overlay, info, warning = preview_mask(path, "classic", masker_config("classic", {}, None, None, None), Limits())
    assert overlay.shape == (120, 160, 3) and overlay.dtype == np.uint8
    assert info.startswith("classic: score") and "covers" in info
    assert warning is None  # a packshot on a plain background: a confident mask
    # the overlay dims the background: the product pixels stay brighter on average than the dimmed corner
    assert overlay[60, 80].astype(int).sum() != overlay[2, 2].astype(int).sum()


def test_masker_config_carries_points_text_and_mask_file(toy_registry):
    from ecomforge.plugins import get_registry
    from ecomforge.web.preview import masker_config

    reg = get_registry()
    if "sam" in reg.plugins["masker"]:
        cfg = masker_config("sam", {}, None, [(10.0, 20.0, 1), (5.0, 5.0, 0)], None)
        assert cfg["points"] == [[10.0, 20.0], [5.0, 5.0]] and cfg["labels"] == [1, 0]
    cfg = masker_config("upload", {"plugin": "classic", "config": {"feather": 3}}, "ignored", None, "/x/m.png")
    assert cfg == {"path": "/x/m.png"}  # another plugin's settings are not carried over
    cfg = masker_config("classic", {"plugin": "classic", "config": {"feather": 3}}, "ignored", None, None)
    assert cfg == {"feather": 3}
