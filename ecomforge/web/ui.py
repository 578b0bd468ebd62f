"""The Gradio UI: photos and mask on the left; Run, progress, the job list and results together on the right."""
import hashlib
import html
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
from gradio import SelectData

from .forms import KEY_FIELDS, form_fields, make_component
from .manager import JobManager
from .preview import masker_accepts
from .readiness import order_presets, preset_choice
from .recipes import list_presets
from .results import thumbs_dir
from .ui_actions import IDLE, Actions, seed_fields
from .uploads import Limits

# Scoped to each HTML component (Gradio 6 takes page-wide CSS only where the app is mounted).
STATUS_CSS = """
.bar {height: 10px; background: #e5e7eb; border-radius: 5px; overflow: hidden; margin: 6px 0}
.bar > div {height: 100%; background: #2563eb; transition: width .3s}
.state-done {color: #15803d} .state-failed {color: #b91c1c}
.state-cancelled, .state-interrupted {color: #b45309}
"""
BADGE_CSS = """
.badge {display: inline-block; padding: 1px 8px; border-radius: 9px; font-size: 90%; margin-top: 4px}
.ok {background: #dcfce7; color: #166534} .need {background: #fef3c7; color: #92400e}
"""
WARNING_CSS = """
.warning {background: #fef3c7; color: #92400e; border-left: 4px solid #d97706; padding: 6px 10px; margin: 4px 0}
.summary {color: #4b5563; font-size: 90%}
"""
# Run is clicked at the top of the right column; on a short window the progress is brought into view.
SHOW_STATUS = "() => { document.getElementById('status')?.scrollIntoView({block: 'nearest', behavior: 'smooth'}) }"


def build_ui(manager: JobManager, recipes_dir: Path, limits: Limits,
             delete_cache: tuple[int, int] | None = (300, 3600)):
    """The Blocks app; every action goes through the same functions as the HTTP API."""
    from ..cli.info import plugin_table

    schemas = {(p["kind"], p["name"]): p["config_schema"] for p in plugin_table()["plugins"]}
    rated = order_presets(list_presets(recipes_dir))
    presets = {p["name"]: p for p, _ in rated}
    first = rated[0][0] if rated else {}
    actions = Actions(manager, Path(recipes_dir), limits, presets, thumbs_dir())
    ui = SimpleNamespace(gr=gr, schemas=schemas, rated=rated, first=first, actions=actions)
    with gr.Blocks(title="ecomforge", delete_cache=delete_cache) as demo:
        ui.demo = demo
        gr.Markdown("## ecomforge — new product photos that keep the product as photographed")
        # The job shown last survives a reload, and a restart: the key only has to be stable, the value
        # (a job id) is no secret from this browser, so it is derived from the runs folder.
        key = hashlib.sha256(f"ecomforge-ui:{manager.root}".encode()).hexdigest()[:32]
        ui.job_id = gr.BrowserState(None, storage_key="ecomforge-job", secret=key)
        ui.results, ui.selected, ui.points, ui.scale = gr.State([]), gr.State(None), gr.State([]), gr.State(1.0)
        with gr.Row():
            with gr.Column(scale=2):
                _photos_section(ui)
                _preset_section(ui)
                _mask_section(ui)
                _settings_section(ui)
            with gr.Column(scale=3):
                _run_section(ui)
                _results_section(ui)
        _wire_presets(ui)
        _wire_mask(ui)
        _wire_jobs(ui)
        _wire_results(ui)
    # Mask previews run models: as many at once as the server has workers. Following a job only polls.
    demo.queue(default_concurrency_limit=manager.workers)
    return demo


def _photos_section(ui) -> None:
    gr = ui.gr
    ui.refs = gr.File(label="1 · Reference photos of the product", file_count="multiple", file_types=["image"],
                      elem_id="refs", height=120)
    ui.ref_thumbs = gr.Gallery(label="Uploaded photos", columns=6, height=120, elem_id="ref-thumbs", fit_columns=False,
                               show_label=False, object_fit="contain", allow_preview=False, interactive=False)
    ui.refused = gr.HTML("", elem_id="refs-refused", css_template=WARNING_CSS, visible=False)

    def on_upload(files):
        thumbs, note = ui.actions.upload_view(files)
        return thumbs, gr.update(value=note, visible=bool(note))

    ui.refs.change(on_upload, ui.refs, [ui.ref_thumbs, ui.refused], concurrency_limit=None)


def _preset_section(ui) -> None:
    gr, first = ui.gr, ui.first
    ui.preset = gr.Dropdown([preset_choice(p, r) for p, r in ui.rated], value=first.get("name"),
                            label="2 · Recipe preset", elem_id="preset")
    # The preset the form's settings came from. A hidden field, not a State: the browser sends it with the
    # settings it shows, so the two always agree (a State would change before the page shows the new form).
    ui.filled_from = gr.Textbox(first.get("name"), visible=False, elem_id="filled-from")
    ui.preset_info = gr.HTML(_preset_info(ui, first.get("name")), elem_id="preset-info", css_template=BADGE_CSS)
    ui.prompt = gr.Textbox(label="Prompt", lines=2, value=first.get("prompt", ""), elem_id="prompt")
    ui.negative = gr.Textbox(label="Negative prompt", value=first.get("negative_prompt", ""), elem_id="negative")


def _preset_info(ui, name: str | None) -> str:
    """The preset's description and whether it runs here."""
    for p, r in ui.rated:
        if p["name"] == name:
            badge = (f"<span class='badge ok'>{r.label}</span>" if r.ready else
                     f"<span class='badge need'>{r.label}</span> <small>for {html.escape(r.detail[:300])}; "
                     "see the server's log</small>")
            return f"<div>{inline_markdown(p.get('description') or '')}</div><div>{badge}</div>"
    return "<div>No preset found in the server's recipes folder.</div>" if not ui.rated else ""


def inline_markdown(text: str) -> str:
    """A preset's description (its YAML comments, written as Markdown) as HTML: escaped, with `code` shown as
    code rather than with its backticks; nothing else of Markdown is needed there."""
    parts = html.escape(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: shown as it is
        return html.escape(text)
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _mask_section(ui) -> None:
    gr = ui.gr
    ui.maskers = maskers = sorted(n for k, n in ui.schemas if k == "masker")
    start = ui.first.get("mask") if ui.first.get("mask") in maskers else (maskers or [None])[0]
    vis = _mask_inputs(start)
    with gr.Accordion("3 · Product mask (optional: check what will be kept)", open=False, elem_id="mask-section"):
        ui.masker = gr.Dropdown(maskers, value=start, label="Masker", elem_id="masker")
        ui.mask_text = gr.Textbox(label="What the product is (text prompt)", visible=vis["text"], elem_id="mask-text",
                                  value=_preset_mask_text(ui.first))
        ui.mask_file = gr.File(label="Mask image (light = product)", file_types=["image"], visible=vis["mask"],
                               elem_id="mask-file")
        ui.point_kind = gr.Radio(["product", "background"], value="product", visible=vis["points"],
                                 label="Clicking the photo adds a point that is…")
        ui.clear = gr.Button("Clear points", visible=vis["points"], size="sm")
        ui.detect = gr.Button("Detect mask", elem_id="detect")
        ui.mask_view = gr.Image(label="Mask over the first photo", interactive=False, elem_id="mask-view", height=260)
        ui.mask_info = gr.HTML(elem_id="mask-info", css_template=WARNING_CSS)


def _preset_mask_text(preset: dict[str, Any]) -> str:
    """The text prompt a preset gives its masker, under the key that masker declares for it."""
    name = preset.get("mask")
    key = masker_accepts(name).get("text") if name else None
    return str((preset.get("mask_config") or {}).get(key, "")) if key else ""


def _mask_inputs(name: str | None) -> dict[str, bool]:
    """Which prompt inputs to show: what the masker declares in ``Masker.accepts``."""
    accepts = masker_accepts(name) if name else {}
    return {"text": "text" in accepts, "points": "points" in accepts, "mask": "mask" in accepts}


def _settings_section(ui) -> None:
    gr, first = ui.gr, ui.first
    generators = sorted(n for k, n in ui.schemas if k == "generator")
    ui.generators, ui.groups, ui.comps = generators, [], []
    with gr.Accordion("4 · Seeds and generator settings", open=False):
        count, base = seed_fields(first)
        with gr.Row():
            ui.n_seeds = gr.Number(label="Number of seeds", precision=0, minimum=1, maximum=1000, value=count)
            ui.base_seed = gr.Number(label="First seed", precision=0, minimum=0, value=base)
            ui.top_k = gr.Number(label="Top-K kept (0: preset's)", precision=0, minimum=0, value=0)
        ui.generator = gr.Dropdown(generators, value=first.get("generate"), label="Generator", elem_id="generator")
        ui.sweep = gr.Textbox(label="Sweep (JSON: setting -> values to try)", max_lines=2,
                              value=json.dumps(first.get("sweep") or {}))
        for g in generators:
            _generator_group(ui, g)
    ui.actions.fields = [(g, f) for g, f, _ in ui.comps]


def _generator_group(ui, g: str) -> None:
    """The settings form of one generator, generated from its config schema (shown when it is chosen)."""
    gr = ui.gr
    values = ui.first.get("generate_config", {}) if ui.first.get("generate") == g else {}
    fields = form_fields(ui.schemas[("generator", g)])
    key = [f for f in fields if f.name in KEY_FIELDS]
    with gr.Group(visible=g == ui.first.get("generate")) as grp:
        for f in key:
            ui.comps.append((g, f, make_component(gr, f, values.get(f.name, f.default))))
        with gr.Accordion(f"{g} settings", open=not key):
            for f in (f for f in fields if f.name not in KEY_FIELDS):
                ui.comps.append((g, f, make_component(gr, f, values.get(f.name, f.default))))
    ui.groups.append(grp)


def _run_section(ui) -> None:
    gr = ui.gr
    with gr.Row(equal_height=True):
        ui.run = gr.Button("▶ Run", variant="primary", elem_id="run", scale=2)
        ui.cancel = gr.Button("Cancel", elem_id="cancel", scale=1)
        ui.resume = gr.Button("Resume", elem_id="resume", scale=1)
        ui.rerun_job = gr.Button("Run this job again", elem_id="rerun-job", scale=1)
    ui.jobs = gr.Dropdown([], value=None, label="Jobs (newest first; pick one to see it)", elem_id="jobs",
                          allow_custom_value=False, info="Loading the server's jobs…")
    ui.status = gr.HTML(IDLE, elem_id="status", css_template=STATUS_CSS)


def _results_section(ui) -> None:
    gr = ui.gr
    ui.gallery = gr.Gallery(label="Results: score, kept or dropped, seed (sN); candidates appear as they are made",
                            columns=4, elem_id="gallery", object_fit="contain", height=420)
    ui.details = gr.JSON(label="Selected candidate: scores and parameters", elem_id="details")
    with gr.Accordion("Download and re-run", open=True):
        ui.chosen = gr.CheckboxGroup(label="Pick results to download", elem_id="chosen")
        with gr.Row():
            ui.dl_sel = gr.Button("Download picked (zip)", elem_id="dl-selected")
            ui.dl_all = gr.Button("Download all (zip)", elem_id="dl-all")
            ui.rerun = gr.Button("Re-run selected candidate with its seed", elem_id="rerun")
        ui.download = gr.File(label="Download", elem_id="download")


def _wire_presets(ui) -> None:
    gr = ui.gr
    form_inputs = [c for _, _, c in ui.comps]

    def on_preset(name):
        p = ui.actions.presets.get(name) or {}
        count, base = seed_fields(p)
        values = []
        for g, f, _ in ui.comps:
            cfg = p.get("generate_config", {}) if p.get("generate") == g else {}
            value = cfg.get(f.name, f.default)
            values.append(value if f.kind != "string" else value or "")
        mask = p.get("mask") if p.get("mask") in ui.maskers else gr.skip()
        return [name, _preset_info(ui, name), p.get("prompt", ""), p.get("negative_prompt", ""), mask,
                _preset_mask_text(p), p.get("generate"), json.dumps(p.get("sweep") or {}),
                count, base, 0, *[gr.update(visible=g == p.get("generate")) for g in ui.generators], *values]

    ui.preset.change(on_preset, ui.preset, [ui.filled_from, ui.preset_info, ui.prompt, ui.negative, ui.masker, ui.mask_text,
                                            ui.generator, ui.sweep, ui.n_seeds, ui.base_seed, ui.top_k, *ui.groups,
                                            *form_inputs], concurrency_limit=None)
    ui.generator.change(lambda g: [gr.update(visible=x == g) for x in ui.generators], ui.generator, ui.groups,
                        concurrency_limit=None)


def _wire_mask(ui) -> None:
    gr, act = ui.gr, ui.actions

    def on_masker(name):
        v = _mask_inputs(name)
        return [gr.update(visible=v["text"]), gr.update(visible=v["mask"]), gr.update(visible=v["points"]),
                gr.update(visible=v["points"]), []]

    ui.masker.change(on_masker, ui.masker, [ui.mask_text, ui.mask_file, ui.point_kind, ui.clear, ui.points],
                     concurrency_limit=None)
    inputs = [ui.refs, ui.masker, ui.mask_text, ui.points, ui.mask_file, ui.preset]
    outputs = [ui.mask_view, ui.mask_info, ui.scale]
    ui.detect.click(act.detect_mask, inputs, outputs)

    def add_point(pts, kind, ratio, evt: SelectData):
        x, y = evt.index
        return [*pts, (x * ratio, y * ratio, 1 if kind == "product" else 0)]

    ui.mask_view.select(add_point, [ui.points, ui.point_kind, ui.scale], ui.points).then(
        act.detect_mask, inputs, outputs)
    ui.clear.click(lambda: [], None, ui.points)


def _wire_jobs(ui) -> None:
    """Run, resume, re-run and the job list all show the job they start in the same status and gallery."""
    act = ui.actions
    follow = [ui.status, ui.gallery, ui.chosen, ui.results, ui.job_id, ui.jobs, ui.preset]
    form = [ui.refs, ui.prompt, ui.negative, ui.preset, ui.filled_from, ui.masker, ui.mask_text, ui.points, ui.mask_file,
            ui.generator, ui.sweep, ui.n_seeds, ui.base_seed, ui.top_k, *[c for _, _, c in ui.comps]]

    # The session tells a browser's views apart: a newer one stops the one being followed (not the job).
    def start(request: gr.Request, *values):
        yield from act.follow(act.submit(*values), request.session_hash)

    def resume(request: gr.Request, jid):
        yield from act.resume(jid, request.session_hash)

    def rerun_job(request: gr.Request, jid):
        yield from act.rerun_job(jid, request.session_hash)

    def rerun(request: gr.Request, jid, cid):
        yield from act.rerun_candidate(jid, cid, request.session_hash)

    def show(request: gr.Request, jid):
        yield from act.follow(jid, request.session_hash, show_preset=True)

    # Following only polls the job table, so it never takes one of the --workers slots.
    watch = {"concurrency_limit": None, "show_progress": "hidden"}
    for trigger, fn, inputs in ((ui.run, start, form), (ui.resume, resume, [ui.job_id]),
                                (ui.rerun_job, rerun_job, [ui.job_id]), (ui.rerun, rerun, [ui.job_id, ui.selected])):
        trigger.click(None, None, None, js=SHOW_STATUS)  # on a short window, bring the progress into view
        trigger.click(fn, inputs, follow, **watch)
    ui.jobs.input(show, ui.jobs, follow, **watch)
    ui.cancel.click(act.cancel, ui.job_id, None, concurrency_limit=None)
    # After a reload, the job this browser last watched is shown again (and followed if it still runs).
    ui.demo.load(show, ui.job_id, follow, **watch)


def _wire_results(ui) -> None:
    act = ui.actions

    def on_select(recs, evt: SelectData):
        return act.select(recs, evt)

    ui.gallery.select(on_select, ui.results, [ui.selected, ui.details], concurrency_limit=None)
    ui.dl_sel.click(act.make_zip, [ui.job_id, ui.chosen], ui.download)
    ui.dl_all.click(lambda j: act.make_zip(j, None), ui.job_id, ui.download)
