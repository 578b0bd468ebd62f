"""The Ray executor on a local 2-CPU cluster: same ids and pixels as local, dead workers, killed drivers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import ray  # installed by scripts/setup.sh: a missing ray must fail, not skip
from PIL import Image

from ecomforge import hookimpl
from ecomforge.recipe import load_recipe
from ecomforge.run.runner import run_recipe
from ecomforge.run.store import read_manifest

import toyplugins

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TESTS = Path(__file__).parent
TOYCLI = [sys.executable, str(TESTS / "toycli.py")]


def _strip(records):
    """Manifest records without timings (the only field allowed to differ between runs)."""
    return sorted(({k: v for k, v in r.items() if k != "timings"} for r in records), key=lambda r: r["id"])


def _same_pixels(dir_a: Path, dir_b: Path, records) -> None:
    for r in records:
        a = np.asarray(Image.open(dir_a / r["image"]))
        b = np.asarray(Image.open(dir_b / r["image"]))
        assert np.array_equal(a, b), (r["id"], np.abs(a.astype(int) - b).max(), (a != b).mean())


def _ray_set(*paths: Path, plugins=("toyplugins",), env: dict[str, str] | None = None, workers: int = 2,
             extra: str = "") -> list[str]:
    """--set items that run generation on Ray with local plugin modules shipped through PYTHONPATH."""
    env_vars = {"PYTHONPATH": os.pathsep.join(str(p) for p in paths), **(env or {})}
    env_yaml = ", ".join(f"{k}: '{v}'" for k, v in env_vars.items())
    cfg = (f"{{num_workers: {workers}, num_cpus_per_worker: 0.5, plugins: [{', '.join(plugins)}], {extra}"
           f"runtime_env: {{env_vars: {{{env_yaml}}}}}}}")
    return ["execute.plugin=ray", f"execute.config={cfg}"]


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module; yields its GCS address for subprocess drivers."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_ray_gives_the_same_manifest_and_pixels_as_local(cluster, toy_registry, toy_recipe, tmp_path):
    """The streaming pipeline (masking, generation, scoring on actor pools) vs the sequential local runner."""
    local = run_recipe(load_recipe(toy_recipe, ["execute.plugin=local", "execute.config.prefetch=0"]),
                       out=tmp_path / "local")
    toyplugins.CALLS.clear()
    sets = _ray_set(TESTS, extra="remote_stages: [mask, score], stage_workers: 2, ")
    remote = run_recipe(load_recipe(toy_recipe, sets), out=tmp_path / "ray")
    assert toyplugins.CALLS == {}  # every mask, image and score was made in a Ray worker, none here
    records = read_manifest(remote.run_dir)
    assert len(records) == 18 and len({r["id"] for r in records}) == 18
    assert _strip(records) == _strip(read_manifest(local.run_dir))
    _same_pixels(local.run_dir, remote.run_dir, records)


class _Spy:
    """Records every candidate the executor hands to the runner."""

    def __init__(self):
        self.ids = []

    @hookimpl
    def on_candidate(self, run, record, image):
        """Note the id."""
        self.ids.append(record["id"])


CRASHY = '''
"""A toy generator whose worker process exits once, the first time any job reaches it."""
import os
from pathlib import Path

import toyplugins
from ecomforge import hookimpl


class CrashOnce(toyplugins.ToyGenerator):
    """Exits the process on its first call when CRASH_MARKER names a file that does not exist yet."""

    name = "toy-crash"

    def generate(self, request):
        """Die once, then behave like the toy generator."""
        marker = os.environ.get("CRASH_MARKER")
        if marker and not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()))
            os._exit(1)
        return super().generate(request)


@hookimpl
def register_generators(register):
    """toy-crash."""
    register(CrashOnce)
'''


def test_a_worker_that_dies_has_its_jobs_retried_without_duplicates(cluster, toy_recipe, tmp_path):
    from ecomforge.testing import temporary_plugins

    (tmp_path / "crashytoy.py").write_text(textwrap.dedent(CRASHY))
    sys.path.insert(0, str(tmp_path))
    try:
        import crashytoy

        with temporary_plugins(toyplugins, crashytoy):
            over = ["generate.plugin=toy-crash"]
            local = run_recipe(load_recipe(toy_recipe, over), out=tmp_path / "local")  # no marker set: no crash
            marker = tmp_path / "crashed"
            sets = _ray_set(TESTS, tmp_path, plugins=("toyplugins", "crashytoy"), env={"CRASH_MARKER": str(marker)})
            remote = run_recipe(load_recipe(toy_recipe, over + sets), out=tmp_path / "ray", observers=[spy := _Spy()])
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("crashytoy", None)
    assert marker.is_file() and int(marker.read_text()) != os.getpid()  # a worker process really exited
    records = read_manifest(remote.run_dir)
    assert len(records) == 18 and len({r["id"] for r in records}) == 18
    assert sorted(spy.ids) == sorted(r["id"] for r in records)  # each candidate came back (and was written) once
    assert _strip(records) == _strip(read_manifest(local.run_dir))
    _same_pixels(local.run_dir, remote.run_dir, records)


def test_killed_driver_resumes_on_ray_to_the_same_result(cluster, toy_registry, toy_recipe, tmp_path):
    """SIGKILL the CLI mid-generation on Ray, resume it on Ray: same manifest as a local run, no duplicates."""
    slow = ["generate.config.delay=0.15"]
    ref_dir = run_recipe(load_recipe(toy_recipe, slow), out=tmp_path / "ref").run_dir
    config = [s for s in _ray_set(TESTS) if s.startswith("execute.config=")]
    sets = [a for s in slow + config for a in ("--set", s)] + ["--executor", "ray", "--address", cluster]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*TOYCLI, "run", str(toy_recipe), "--out", str(tmp_path / "crash"), "--progress", "none",
                             *sets], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if len(list(tmp_path.glob("crash/*/candidates/*.png"))) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    crash_dir = next((tmp_path / "crash").iterdir())
    assert len(read_manifest(crash_dir)) < 18, err.decode()[-2000:]  # it really was interrupted

    res = subprocess.run([*TOYCLI, "run", str(toy_recipe), "--resume", str(crash_dir), "--progress", "none", *sets],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    final = read_manifest(crash_dir)
    assert len({r["id"] for r in final}) == len(final) == 18
    assert _strip(final) == _strip(read_manifest(ref_dir))
    _same_pixels(crash_dir, ref_dir, final)
    assert not list(crash_dir.rglob("*.tmp"))


def test_a_generator_error_in_a_worker_is_the_runs_error(cluster, toy_registry, toy_recipe, tmp_path):
    """A plugin missing on the workers is one line naming the fix, exit code 2, not a Ray traceback."""
    from ecomforge.errors import StageError

    with pytest.raises(StageError) as info:
        run_recipe(load_recipe(toy_recipe, _ray_set(TESTS, plugins=())), out=tmp_path)
    err = info.value
    assert err.exit_code == 2
    assert "Ray workers could not build generator 'toy'" in str(err)
    assert "execute.config.plugins" in err.one_line()


def test_default_worker_count():
    from ecomforge.run.ray_executor import default_workers

    assert default_workers(gpus=8, cpus=64, per_gpu=1, per_cpu=1) == 8  # one actor per GPU
    assert default_workers(gpus=2, cpus=16, per_gpu=0.5, per_cpu=1) == 4
    assert default_workers(gpus=8, cpus=64, per_gpu=0.8, per_cpu=1) == 8  # 0.8 fits once per GPU, not 10 times
    assert default_workers(gpus=8, cpus=64, per_gpu=2, per_cpu=1) == 4
    assert default_workers(gpus=0, cpus=16, per_gpu=0, per_cpu=4) == 4  # CPU slots
    assert default_workers(gpus=0, cpus=2, per_gpu=0, per_cpu=4) == 1  # never zero


def test_config_is_validated_before_ray_starts(toy_registry, toy_recipe):
    from ecomforge.errors import RecipeError

    with pytest.raises(RecipeError, match="execute.config.max_retry"):
        load_recipe(toy_recipe, ["execute.plugin=ray", "execute.config.max_retry=2"])


SD_RECIPE = """
name: tiny-sd-ray
inputs:
  references: [ref.png]
  prompt: a product on a wooden table
  negative_prompt: blurry
mask: {plugin: classic, config: {feather: 2}}
generate:
  plugin: sd-inpaint
  config: {model: MODEL, steps: 2, max_side: 64, scheduler: DDIM}
  sweep: {guidance_scale: [5.0, 7.5]}
  seeds: [1, 2]
  batch_size: 2
filter: {plugin: threshold, config: {dedupe: false}}
"""


def test_real_tiny_diffusers_model_gives_the_same_pixels_on_ray(cluster, tmp_path):
    """The sd-inpaint plugin (installed, so found by the workers' entry points) on a tiny SD model on disk."""
    pytest.importorskip("ecomforge_diffusers")
    from ecomforge.imaging.io import save_png
    from ecomforge.testing import sample_image
    from ecomforge.testing.tiny_diffusers import build_tiny_pipeline

    model = build_tiny_pipeline(tmp_path / "tiny", kind="inpaint")
    save_png(tmp_path / "ref.png", sample_image(96, 64)[0])
    recipe = tmp_path / "sd.yaml"
    recipe.write_text(SD_RECIPE.replace("MODEL", str(model)))


    import torch

    # CPU float sums depend on the thread count; Ray gives an actor OMP_NUM_THREADS=num_cpus, so match ours.
    threads = torch.get_num_threads()
    cfg = ("{num_workers: 1, num_cpus_per_worker: 0.5, runtime_env: "
           f"{{env_vars: {{HF_HUB_OFFLINE: '1', OMP_NUM_THREADS: '{threads}'}}}}}}")
    sets = ["execute.plugin=ray", f"execute.config={cfg}"]
    local = run_recipe(load_recipe(recipe), out=tmp_path / "local", device="cpu")
    remote = run_recipe(load_recipe(recipe, sets), out=tmp_path / "ray", device="cpu")
    records = read_manifest(remote.run_dir)
    assert len(records) == 4 and {r["models"]["model"] for r in records} == {model.name}  # no local paths
    assert _strip(records) == _strip(read_manifest(local.run_dir))
    _same_pixels(local.run_dir, remote.run_dir, records)
    assert len({(remote.run_dir / r["image"]).read_bytes() for r in records}) == 4  # seeds and guidance matter


def test_the_core_imports_without_ray_and_says_how_to_get_it(monkeypatch):
    """Importing the executor never imports ray; using it without ray is one line with the pip command."""
    from ecomforge.errors import UsageError
    from ecomforge.run.ray_executor import RayExecutor

    code = "import sys, ecomforge.plugins as p; p.get_registry().get('executor', 'ray'); print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(UsageError) as info:
        RayExecutor({})._connect()
    assert info.value.exit_code == 2 and "pip install 'ecomforge[ray]'" in info.value.one_line()
