"""The Gradio UI: references, mask preview, prompts, a preset with its key settings, live progress, results."""

import html
import logging
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import EcomforgeError
from .forms import KEY_FIELDS, coerce, form_fields, make_component
from .jobs import TERMINAL
from .manager import JobManager
from .preview import masker_config, preview_mask
from .recipes import list_presets
from .submit import rerun_candidate, submit_job
from .uploads import Limits

log = logging.getLogger("ecomforge.web")
CSS = """
#status .bar {height: 10px; background: #e5e7eb; border-radius: 5px; overflow: hidden; margin: 6px 0}
#status .bar > div {height: 100%; background: #2563eb; transition: width .3s}
#status .state-done {color: #15803d} #status .state-failed {color: #b91c1c}
"""


def _read(path: Any) -> bytes:
    return Path(path if isinstance(path, str) else path.name).read_bytes()


def _paths(files: Any) -> list[str]:
    if not files:
        return []
    files = files if isinstance(files, list) else [files]
    return [f if isinstance(f, str) else f.name for f in files]


def status_html(job: dict[str, Any]) -> str:
    """The progress block: state, stage with done/total, a bar and the ETA."""
    p = job.get("progress") or {}
    state = job["state"]
    frac = 1.0 if state == "done" else float(p.get("fraction") or 0.0)
    parts = [f"<b class='state-{state}'>{html.escape(state)}</b> · job <code>{job['id']}</code>"]
    if state == "queued" and job.get("waiting"):
        parts.append(f"{job['waiting']} waiting")
    if state == "running" and p.get("stage"):
        parts.append(f"{html.escape(str(p['stage']))} {p.get('done', 0)}/{p.get('total', 0)}")
        if p.get("eta_s") is not None:
            parts.append(f"ETA {p['eta_s']:.0f} s")
    if state == "done":
        s = job.get("summary") or {}
        parts.append(f"{s.get('total_candidates', 0)} candidates, {s.get('total_kept', 0)} kept in {s.get('seconds', 0):.1f} s")
    if job.get("error"):
        parts.append(html.escape(job["error"]))
    return (f"<div>{' · '.join(parts)}</div><div class='bar'><div style='width:{frac * 100:.0f}%'></div></div>")


def build_ui(manager: JobManager, recipes_dir: Path, limits: Limits):
    """The Blocks app; every action goes through the same functions as the HTTP API."""
    import gradio as gr

    from ..cli.info import plugin_table

    table = plugin_table()["plugins"]
    schemas = {(p["kind"], p["name"]): p["config_schema"] for p in table}
    generators = sorted(n for k, n in schemas if k == "generator")
    maskers = sorted(n for k, n in schemas if k == "masker")
    presets = {p["name"]: p for p in list_presets(recipes_dir) if "error" not in p}
    first = next(iter(presets.values()), None)
    fields = {g: form_fields(schemas[("generator", g)]) for g in generators}

    def mask_section(name: str) -> dict[str, Any]:
        props = (schemas.get(("masker", name)) or {}).get("properties", {})
        return {"text": "text" in props, "points": "points" in props, "upload": name == "upload"}

    with gr.Blocks(title="ecomforge") as demo:
        gr.Markdown("## ecomforge — new product photos that keep the product as photographed")
        job_id = gr.State(None)
        results = gr.State([])
        selected = gr.State(None)
        points = gr.State([])
        scale = gr.State(1.0)
        with gr.Row():
            with gr.Column(scale=2):
                refs = gr.File(label="Reference photos", file_count="multiple", file_types=["image"], elem_id="refs")
                with gr.Accordion("Product mask", open=True):
                    start_masker = (first or {}).get("mask") if (first or {}).get("mask") in maskers else (maskers or [None])[0]
                    vis = mask_section(start_masker or "")
                    masker = gr.Dropdown(maskers, value=start_masker, label="Masker", elem_id="masker")
                    mask_text = gr.Textbox(label="What the product is (text prompt)", visible=vis["text"],
                                           value=((first or {}).get("mask_config") or {}).get("text", ""))
                    mask_file = gr.File(label="Mask image (light = product)", file_types=["image"], visible=vis["upload"])
                    point_kind = gr.Radio(["product", "background"], value="product", visible=vis["points"],
                                          label="Clicking the photo adds a point that is…")
                    clear = gr.Button("Clear points", visible=vis["points"], size="sm")
                    detect = gr.Button("Detect mask", elem_id="detect")
                    mask_view = gr.Image(label="Mask over the first photo", interactive=False, elem_id="mask-view",
                                         height=260)
                    mask_info = gr.Markdown()
                prompt = gr.Textbox(label="Prompt", lines=2, value=(first or {}).get("prompt", ""), elem_id="prompt")
                negative = gr.Textbox(label="Negative prompt", value=(first or {}).get("negative_prompt", ""))
                preset = gr.Dropdown(list(presets), value=(first or {}).get("name"), label="Recipe preset",
                                     elem_id="preset")
                with gr.Row():
                    count, base = _seed_fields(first or {})
                    n_seeds = gr.Number(label="Number of seeds", precision=0, minimum=1, maximum=1000, value=count)
                    base_seed = gr.Number(label="First seed", precision=0, minimum=0, value=base)
                    top_k = gr.Number(label="Top-K kept (0: preset's)", precision=0, minimum=0, value=0)
                generator = gr.Dropdown(generators, value=(first or {}).get("generate"), label="Generator")
                sweep = gr.Textbox(label="Sweep (JSON: setting -> values to try)", max_lines=2,
                                   value=json.dumps((first or {}).get("sweep") or {}))
                groups, comps = [], []  # comps: (generator, FieldSpec, component)
                for g in generators:
                    base = (first or {}).get("generate_config", {}) if (first or {}).get("generate") == g else {}
                    with gr.Group(visible=g == (first or {}).get("generate")) as grp:
                        key = [f for f in fields[g] if f.name in KEY_FIELDS]
                        more = [f for f in fields[g] if f.name not in KEY_FIELDS]
                        for f in key:
                            comps.append((g, f, make_component(gr, f, base.get(f.name, f.default))))
                        with gr.Accordion(f"{g} settings", open=not key):
                            for f in more:
                                comps.append((g, f, make_component(gr, f, base.get(f.name, f.default))))
                    groups.append(grp)
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run")
                    cancel = gr.Button("Cancel", elem_id="cancel")
            with gr.Column(scale=3):
                status = gr.HTML(elem_id="status")
                gallery = gr.Gallery(label="Results (score · kept · seed)", columns=4, elem_id="gallery",
                                     object_fit="contain", height=420)
                details = gr.JSON(label="Selected candidate: scores and parameters", elem_id="details")
                chosen = gr.CheckboxGroup(label="Pick results to download", elem_id="chosen")
                with gr.Row():
                    dl_sel = gr.Button("Download picked (zip)", elem_id="dl-selected")
                    dl_all = gr.Button("Download all (zip)", elem_id="dl-all")
                    rerun = gr.Button("Re-run selected candidate with its seed", elem_id="rerun")
                download = gr.File(label="Download", elem_id="download")

        form_inputs = [c for _, _, c in comps]

        # --- preset and plugin choices --------------------------------------------------------
        def on_preset(name):
            p = presets.get(name) or {}
            count, base = _seed_fields(p)
            values = []
            for g, f, _ in comps:
                cfg = p.get("generate_config", {}) if p.get("generate") == g else {}
                values.append(cfg.get(f.name, f.default) if f.kind != "string" else cfg.get(f.name, f.default) or "")
            mask = p.get("mask") if p.get("mask") in maskers else gr.skip()
            return [p.get("prompt", ""), p.get("negative_prompt", ""), mask, (p.get("mask_config") or {}).get("text", ""),
                    p.get("generate"),
                    json.dumps(p.get("sweep") or {}), count, base, 0,
                    *[gr.update(visible=g == p.get("generate")) for g in generators], *values]

        preset.change(on_preset, preset, [prompt, negative, masker, mask_text, generator, sweep, n_seeds, base_seed, top_k,
                                          *groups, *form_inputs])
        generator.change(lambda g: [gr.update(visible=x == g) for x in generators], generator, groups)

        def on_masker(name):
            v = mask_section(name or "")
            return [gr.update(visible=v["text"]), gr.update(visible=v["upload"]), gr.update(visible=v["points"]),
                    gr.update(visible=v["points"]), []]

        masker.change(on_masker, masker, [mask_text, mask_file, point_kind, clear, points])

        # --- mask preview ---------------------------------------------------------------------
        def detect_mask(files, name, text, pts, mfile, preset_name):
            paths = _paths(files)
            if not paths:
                raise gr.Error("Upload a reference photo first.")
            p = presets.get(preset_name) or {}
            cfg = masker_config(name, {"plugin": p.get("mask"), "config": p.get("mask_config") or {}}, text, pts,
                                (_paths(mfile) or [None])[0])
            try:
                overlay, info = preview_mask(paths[0], name, cfg, limits)
            except EcomforgeError as exc:
                raise gr.Error(exc.one_line()) from None
            except Exception as exc:  # a plugin's own failure: shown in the page, logged with its traceback
                log.exception("mask preview failed")
                raise gr.Error(f"{type(exc).__name__}: {exc}") from None
            from PIL import Image

            with Image.open(paths[0]) as im:
                ratio = max(im.size) / max(overlay.shape[:2])
            return overlay, info, ratio

        detect_inputs = [refs, masker, mask_text, points, mask_file, preset]
        detect.click(detect_mask, detect_inputs, [mask_view, mask_info, scale])

        def add_point(pts, kind, ratio, evt: gr.SelectData):
            x, y = evt.index
            return [*pts, (x * ratio, y * ratio, 1 if kind == "product" else 0)]

        mask_view.select(add_point, [points, point_kind, scale], points).then(
            detect_mask, detect_inputs, [mask_view, mask_info, scale])
        clear.click(lambda: [], None, points)

        # --- running and following a job ---------------------------------------------------------
        def overrides_from(preset_name, name, text, pts, gen, sweep_text, count, base, k, *values):
            p = presets.get(preset_name) or {}
            over: dict[str, Any] = {}
            if name and name != "upload":
                over["mask"] = {"plugin": name, "config": masker_config(
                    name, {"plugin": p.get("mask"), "config": p.get("mask_config") or {}}, text, pts, None)}
            cfg = {}
            for (g, f, _), v in zip(comps, values):
                if g == gen and (value := coerce(f, v)) is not None:
                    cfg[f.name] = value
            if gen != p.get("generate"):
                over["generate.plugin"] = gen
                over["generate.config"] = cfg
            else:
                over.update({f"generate.config.{k2}": v2 for k2, v2 in cfg.items()})
            try:
                over["generate.sweep"] = json.loads(sweep_text) if (sweep_text or "").strip() else {}
            except json.JSONDecodeError as exc:
                raise gr.Error(f"sweep: not valid JSON ({exc.msg})") from None
            if count and (int(count), int(base or 0)) != _seed_fields(p):  # untouched: the preset's own seeds
                over["generate.seeds"] = {"count": int(count), "base": int(base or 0)}
            if k and int(k) > 0:
                over["filter.config.top_k"] = int(k)
            return over

        def follow(jid):
            shown = -1
            while True:
                job = manager.get(jid)
                d = job.to_dict()
                d["waiting"] = manager.waiting() if job.state == "queued" else 0
                res = _gallery(manager, job) if job.state in TERMINAL or job.progress.get("stage") == "filter" else None
                if res is not None and len(res[0]) != shown:
                    shown = len(res[0])
                    items, recs = res
                    yield (status_html(d), items, gr.update(choices=[(f"{c} · {r['id'][:8]}", r["id"]) for (_, c), r in zip(items, recs)],
                                                            value=[]), recs, jid)
                else:
                    yield status_html(d), gr.skip(), gr.skip(), gr.skip(), jid
                if job.state in TERMINAL:
                    return
                time.sleep(0.4)

        follow_outputs = [status, gallery, chosen, results, job_id]

        def start(files, text_p, neg, preset_name, name, text, pts, mfile, gen, sweep_text, count, base, k, *values):
            paths = _paths(files)
            if not paths:
                raise gr.Error("Upload at least one reference photo.")
            if preset_name not in presets:
                raise gr.Error("Choose a recipe preset.")
            over = overrides_from(preset_name, name, text, pts, gen, sweep_text, count, base, k, *values)
            masks = [_read(_paths(mfile)[0])] * len(paths) if name == "upload" and _paths(mfile) else []
            if name == "upload" and not masks:
                raise gr.Error("The upload masker needs a mask image.")
            try:
                job = submit_job(manager, recipes_dir, limits, references=[_read(p) for p in paths], masks=masks,
                                 preset=preset_name, prompt=text_p, negative_prompt=neg, overrides=over)
            except EcomforgeError as exc:
                log.warning("job refused: %s", exc.one_line())
                raise gr.Error(exc.one_line()) from None
            yield from follow(job.id)

        run.click(start, [refs, prompt, negative, preset, masker, mask_text, points, mask_file, generator, sweep, n_seeds,
                          base_seed, top_k, *form_inputs], follow_outputs)
        cancel.click(lambda j: manager.cancel(j) and None if j else None, job_id, None)

        def on_select(recs, evt: gr.SelectData):
            if not recs or evt.index is None or evt.index >= len(recs):
                return None, None
            r = recs[evt.index]
            return r["id"], {k: r.get(k) for k in ("id", "total", "scores", "kept", "reason", "seed", "params",
                                                 "plugin", "reference")}

        gallery.select(on_select, results, [selected, details])

        def again(jid, cid):
            if not jid or not cid:
                raise gr.Error("Select a result in the gallery first.")
            try:
                job = rerun_candidate(manager, recipes_dir, limits, jid, cid)
            except EcomforgeError as exc:
                raise gr.Error(exc.one_line()) from None
            yield from follow(job.id)

        rerun.click(again, [job_id, selected], follow_outputs)

        def make_zip(jid, ids):
            if not jid:
                raise gr.Error("Run a job first.")
            job = manager.get(jid)
            from .api import zip_results

            root = manager.store.job_dir(jid) / (job.run_dir or "")
            if not job.run_dir or not (root / "manifest.jsonl").is_file():
                raise gr.Error("No results yet.")
            if ids is not None and not ids:
                raise gr.Error("Pick some results first.")
            data = zip_results(root, job, ",".join(ids) if ids else None)
            out = Path(tempfile.mkdtemp(prefix="ecomforge-zip-")) / f"{jid}-{'picked' if ids else 'all'}.zip"
            out.write_bytes(data)
            return str(out)

        dl_sel.click(make_zip, [job_id, chosen], download)
        dl_all.click(lambda j: make_zip(j, None), job_id, download)
    return demo


def _seed_fields(preset: dict[str, Any]) -> tuple[int, int]:
    """(number of seeds, first seed) of a preset; a seed list shows as its length and first value."""
    seeds = preset.get("seeds")
    if isinstance(seeds, dict):
        return int(seeds.get("count", 1)), int(seeds.get("base", 0))
    seeds = seeds if isinstance(seeds, list) and seeds else [0]
    return len(seeds), int(seeds[0])


def _gallery(manager: JobManager, job) -> tuple[list[tuple[str, str]], list[dict[str, Any]]] | None:
    """(gallery items, records), kept ones first, best total first."""
    if not job.run_dir:
        return [], []
    from ..run.store import read_manifest

    root = manager.store.job_dir(job.id) / job.run_dir
    if not (root / "manifest.jsonl").is_file():
        return [], []
    recs = sorted(read_manifest(root), key=lambda r: (not r["kept"], -(r.get("total") or 0.0), r["id"]))
    items = []
    for r in recs:
        total = r.get("total")
        caption = f"{total:.2f}" if total is not None else "failed"
        caption += f" · {'kept' if r['kept'] else 'dropped'} · seed {r['seed']}"
        items.append((str(root / r["image"]), caption))
    return items, recs
