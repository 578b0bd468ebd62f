"""End to end through `ecomforge run`: the runner hands references, masks and candidates to these scorers."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from ecomforge import hookimpl
from ecomforge.stages import Filter, Generator, StageConfig
from ecomforge.types import Candidate, Decision


class ProductVariants(Generator):
    """Seed 1: the product on a new background (faithful); seed 2: the product's hue shifted (not faithful)."""

    name = "test-product-variants"
    Config = StageConfig

    def generate(self, request):
        """One candidate per seed."""
        ref, mask = request.reference.image, request.mask.data > 0
        out = []
        for seed in request.seeds:
            img = np.full_like(ref, 40 * seed)
            img[mask] = ref[mask]
            if seed == 2:
                hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
                hsv[..., 0] = (hsv[..., 0].astype(int) + 60) % 180
                img = np.where(mask[:, :, None], cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), img).astype(np.uint8)
            out.append(Candidate(img, seed, {}, plugin=self.name, mask=request.mask.data))
        return out


class KeepAll(Filter):
    """Keeps every candidate."""

    name = "test-keep-all"
    Config = StageConfig

    def select(self, scored):
        """Everything is kept."""
        return [Decision(True, "kept") for _ in scored]


class TestPlugin:
    """Registers the two test stages beside the installed plugins."""

    __name__ = "scorers-e2e-test"

    @hookimpl
    def register_generators(self, register):
        """The variant generator."""
        register(ProductVariants)

    @hookimpl
    def register_filters(self, register):
        """The keep-all filter."""
        register(KeepAll)


def test_run_recipe_scores_with_every_learned_scorer(tmp_path, tiny_open_clip, tiny_dinov2):
    """A recipe with clip-image, clip-text, dino and lpips runs; faithful candidates outscore the damaged one."""
    from ecomforge.cli import cli
    from ecomforge.testing import sample_image, temporary_plugins

    img, _ = sample_image(128, 96, seed=3)
    cv2.imwrite(str(tmp_path / "product.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""
name: scorers-e2e
inputs:
  references: [product.png]
  prompt: "a product photo"
mask: {{plugin: classic}}
generate: {{plugin: test-product-variants, seeds: [1, 2]}}
score:
  - {{plugin: clip-image, config: {{model: "{tiny_open_clip}"}}}}
  - {{plugin: clip-text, config: {{model: "{tiny_open_clip}", low: -1.0}}}}
  - {{plugin: dino, config: {{model: "{tiny_dinov2}"}}}}
  - {{plugin: lpips, config: {{backbone: random, size: 64}}}}
filter: {{plugin: test-keep-all}}
""")
    with temporary_plugins(TestPlugin()):
        res = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(tmp_path / "runs"), "--device", "cpu"],
                                 catch_exceptions=False)
    assert res.exit_code == 0, res.output
    manifests = list((tmp_path / "runs").glob("*/manifest.jsonl"))
    assert len(manifests) == 1
    records = sorted((json.loads(line) for line in manifests[0].read_text().splitlines()), key=lambda r: r["seed"])
    assert [r["seed"] for r in records] == [1, 2]
    for r in records:
        assert set(r["scores"]) >= {"clip-image", "clip-text", "dino", "lpips"}
        assert all(0.0 <= v <= 1.0 for v in r["scores"].values())
    faithful, damaged = records[0]["scores"], records[1]["scores"]
    # Outside the mask is greyed out, so a new background leaves the product crop identical.
    assert faithful["clip-image"] == faithful["dino"] == faithful["lpips"] == 1.0
    assert damaged["lpips"] < 1.0 and damaged["clip-image"] < 1.0 and damaged["dino"] < 1.0


class CountingGenerator(Generator):
    """Counts its calls: a pre-flight failure must come before any of them."""

    name = "test-counting"
    Config = StageConfig
    calls = 0

    def generate(self, request):
        """One grey candidate per seed."""
        CountingGenerator.calls += 1
        return [Candidate(np.full_like(request.reference.image, 128), s, {}, plugin=self.name) for s in request.seeds]


class CountingPlugin:
    """Registers the counting generator and the keep-all filter."""

    __name__ = "scorers-preflight-test"

    @hookimpl
    def register_generators(self, register):
        """The counting generator."""
        register(CountingGenerator)

    @hookimpl
    def register_filters(self, register):
        """The keep-all filter."""
        register(KeepAll)


@pytest.mark.parametrize("scorer, model, message", [
    ("dino", "{tmp}/dinoo", "config.model: no such folder: {tmp}/dinoo"),
    ("clip-image", "{tmp}/clipp", "config.model: no such folder or file: {tmp}/clipp"),
    ("clip-text", "ViT-B-32/laion2b_s34b_b79k", "config.model: offline: CLIP weights for 'ViT-B-32/laion2b_s34b_b79k'"),
    ("dino", "facebook/dinov2-small", "config.model: offline: DINOv2 weights for 'facebook/dinov2-small'"),
])
def test_missing_scorer_weights_stop_the_run_before_any_work(scorer, model, message, tmp_path, monkeypatch, capsys):
    """A scorer's missing weights are found by its check(): exit 2, one line naming the key, no run folder,
    no generation; a local path that does not exist says so instead of suggesting a hub download."""
    from ecomforge.cli import main
    from ecomforge.testing import sample_image, temporary_plugins

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    monkeypatch.setenv("ECOMFORGE_MODELS", str(tmp_path / "models"))
    img, _ = sample_image(48, 32, seed=1)
    cv2.imwrite(str(tmp_path / "product.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""
name: preflight
inputs: {{references: [product.png], prompt: "a product"}}
mask: {{plugin: classic}}
generate: {{plugin: test-counting, seeds: [1]}}
score: [{{plugin: {scorer}, config: {{model: "{model.format(tmp=tmp_path)}"}}}}]
filter: {{plugin: test-keep-all}}
""")
    CountingGenerator.calls = 0
    with temporary_plugins(CountingPlugin()), pytest.raises(SystemExit) as exit_info:
        main(["run", str(recipe), "--out", str(tmp_path / "runs"), "--device", "cpu", "--progress", "none"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert message.format(tmp=tmp_path) in err and f"score plugin '{scorer}' is not ready" in err
    assert model.startswith("{") == ("huggingface-cli" not in err)
    assert CountingGenerator.calls == 0 and not list((tmp_path / "runs").glob("*"))
