"""What the UI's buttons do: each goes through the same functions as the HTTP API (submit, cancel, resume, rerun)."""
from __future__ import annotations

import html
import itertools
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EcomforgeError, NothingFound
from ..imaging.maskfile import confine
from .forms import FieldSpec, coerce
from .jobs import TERMINAL
from .manager import JobManager
from .preview import masker_accepts, masker_config, preview_mask
from .results import job_choices, job_results, plural, status_html, thumbnail
from .submit import reference_names, rerun_candidate, submit_job
from .trust import pattern_root
from .uploads import FORMATS, Limits, image_header

log = logging.getLogger("ecomforge.web")
POLL_S = 0.4
MAX_ZIPS = 4  # download zips kept on disk (Download all / Download picked); older ones are deleted
IDLE = "<div>Upload photos, pick a preset, then Run: progress and results appear here.</div>"


def paths_of(files: Any) -> list[str]:
    """File paths from a Gradio File value (one file, a list, or nothing)."""
    if not files:
        return []
    files = files if isinstance(files, list) else [files]
    return [f if isinstance(f, str) else f.name for f in files]


def _warning_html(warning: str | None, info: str) -> str:
    shown = f"<div class='summary'>{html.escape(info)}</div>" if info else ""
    return f"<div class='warning'>Warning: {html.escape(warning)}</div>{shown}" if warning else shown


def _refused_html(lines: list[str]) -> str:
    """The uploads that will not be used, one line each (escaped: a file name is the user's text)."""
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f"<div class='warning'>Not used (Run would refuse them): <ul>{items}</ul></div>"


def seed_fields(preset: dict[str, Any]) -> tuple[int, int]:
    """(number of seeds, first seed) of a preset; a seed list shows as its length and first value."""
    seeds = preset.get("seeds")
    if isinstance(seeds, dict):
        return int(seeds.get("count", 1)), int(seeds.get("base", 0))
    seeds = seeds if isinstance(seeds, list) and seeds else [0]
    return len(seeds), int(seeds[0])


def rerun_job(manager: JobManager, recipes_dir: Path, limits: Limits, job_id: str):
    """A new job with the same photos, masks, recipe and overrides as ``job_id`` (checked again like any request)."""
    from ..errors import InputError
    from ..recipe.load import read_yaml
    from .manager import JOB_RECIPE, JobNotFound

    job = manager.get(job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id!r}")
    jdir = manager.store.job_dir(job_id).resolve()
    data = read_yaml(jdir / JOB_RECIPE)
    refs = [Path(p).resolve() for p in (data.get("inputs") or {}).get("references") or []]
    if not refs or any(not p.is_relative_to(jdir) or not p.is_file() for p in refs):
        raise InputError(f"job {job_id}: its uploaded photos are gone, so it cannot run again")
    masks = [jdir / "uploads" / "masks" / f"{p.stem}.png" for p in refs] if job.request.get("masks") else []
    inputs = data["inputs"]
    return submit_job(manager, recipes_dir, limits, references=[p.read_bytes() for p in refs],
                      masks=[m.read_bytes() for m in masks if m.is_file()],
                      recipe_file=json.dumps(data).encode(), prompt=inputs.get("prompt"),
                      negative_prompt=inputs.get("negative_prompt"), overrides={},
                      trust_preset=None if job.recipe.startswith("upload:") else job.recipe,
                      names=reference_names(job, [str(p) for p in refs]), label=job.recipe)


@dataclass
class Actions:
    """The UI's handlers, bound to one job manager; ``fields`` are the generator settings in form order."""

    manager: JobManager
    recipes_dir: Path
    limits: Limits
    presets: dict[str, dict[str, Any]]
    thumbs: Path
    fields: list[tuple[str, FieldSpec]] = field(default_factory=list)  # (generator, field) per settings input
    _views: dict[str, int] = field(default_factory=dict)  # browser session -> the view it follows now
    _counter: Any = field(default_factory=itertools.count)
    _lock: Any = field(default_factory=threading.Lock)

    def error(self, message: str):
        """A message shown in the page (Gradio's toast), with no server path in it.

        The toast renders HTML, so the message is escaped (``<models>`` would end it); it is the user's
        error, not the server's, so the log gets one line, not Gradio's traceback.
        """
        import gradio as gr

        text = self.manager.scrub_message(message)
        log.warning("ui: %s", text)
        return gr.Error(html.escape(text), print_exception=False)

    # --- uploads and the mask preview -----------------------------------------------------------
    def upload_thumbs(self, files: Any) -> list[tuple[str, str]]:
        """Thumbnails of the uploaded photos (``upload_view`` without the refusals)."""
        return self.upload_view(files)[0]

    def upload_view(self, files: Any) -> tuple[list[tuple[str, str]], str]:
        """Thumbnails of the uploaded photos, and a note naming each one refused, with why (too large, or a type
        the API refuses: named, not decoded), so the user learns it now rather than at Run.

        Decoding takes one of the intake slots, as a submission's does, so many uploads at once cannot
        add up to more memory than that.
        """
        out, refused = [], []
        try:
            with self.manager.intake_slot(for_job=False):
                for p in paths_of(files):
                    name = Path(p).name
                    try:
                        with open(p, "rb") as f:  # the API's checks from the bytes (type, JPEG scans, size) first
                            image_header(f.read(self.limits.max_file_bytes + 1), name, self.limits)
                        out.append((thumbnail(Path(p), self.thumbs, self.limits.max_pixels, formats=FORMATS), name))
                    except EcomforgeError as exc:
                        refused.append(exc.one_line())
                    except Exception as exc:  # Pillow's own words hold nothing a user can act on
                        log.info("no thumbnail for %s: %s", name, exc)
                        refused.append(f"{name}: not an image this server can read (PNG, JPEG or WebP)")
        except EcomforgeError as exc:
            raise self.error(exc.one_line()) from exc
        return out, _refused_html([self.manager.scrub_message(r) for r in refused])

    def detect_mask(self, files, name, text, pts, mfile, preset_name):
        """Run the chosen masker on the first photo: (overlay, summary with any warning, overlay-to-photo scale)."""
        paths = paths_of(files)
        if not paths:
            raise self.error("Upload a reference photo first.")
        if not name:
            raise self.error("Choose a masker.")
        p = self.presets.get(preset_name) or {}
        masks = paths_of(mfile)
        cfg = masker_config(name, {"plugin": p.get("mask"), "config": p.get("mask_config") or {}}, text, pts,
                            masks[0] if masks else None)
        try:
            # A preview decodes and masks a whole photo: it takes one of the same few slots as job intake,
            # so parallel previews cannot add up to more memory than parallel submissions.
            # Mask files only from the presets, the preset's own mask folders and this upload, as a job's
            # worker confines them: '{stem}' is the name of a photo the user uploaded.
            roots: list[str | Path] = [self.recipes_dir, *(Path(m).parent for m in masks),
                     *(r for v in (p.get("mask_config") or {}).values() if isinstance(v, str)
                       if (r := pattern_root(v)) is not None)]
            with self.manager.intake_slot(for_job=False), confine(roots):
                overlay, info, warning = preview_mask(paths[0], name, cfg, self.limits)
        except NothingFound as exc:  # the masker refused to guess: say so where the mask would be
            hint = "" if "try " in exc.one_line().lower() else " Try another masker, or upload a mask."
            return None, _warning_html(self.manager.scrub_message(exc.one_line()) + hint, ""), 1.0
        except EcomforgeError as exc:
            raise self.error(exc.one_line()) from exc
        except Exception as exc:  # a plugin's own failure: shown in the page, logged with its traceback
            log.exception("mask preview failed")
            raise self.error(f"{type(exc).__name__}: {exc}") from exc
        from PIL import Image

        with Image.open(paths[0], formats=sorted(FORMATS)) as im:
            ratio = max(im.size) / max(overlay.shape[:2])
        return overlay, _warning_html(warning, info), ratio

    # --- building and submitting a job ----------------------------------------------------------
    def overrides(self, preset_name, name, text, pts, gen, sweep_text, count, base, k, values) -> dict[str, Any]:
        """Recipe overrides from the form: only what differs from the preset."""
        p = self.presets.get(preset_name) or {}
        over: dict[str, Any] = {}
        if name:
            over["mask"] = {"plugin": name, "config": masker_config(
                name, {"plugin": p.get("mask"), "config": p.get("mask_config") or {}}, text, pts, None)}
        try:
            cfg = {f.name: v for (g, f), raw in zip(self.fields, values)
                   if g == gen and (v := coerce(f, raw)) is not None}
        except (TypeError, ValueError) as exc:
            raise self.error(f"generator settings: {exc}") from exc
        if gen != p.get("generate"):
            over["generate.plugin"] = gen
            over["generate.config"] = cfg
        else:
            over.update({f"generate.config.{key}": v for key, v in cfg.items()})
        try:
            over["generate.sweep"] = json.loads(sweep_text) if (sweep_text or "").strip() else {}
        except json.JSONDecodeError as exc:
            raise self.error(f"sweep: not valid JSON ({exc.msg})") from exc
        except RecursionError as exc:
            raise self.error("sweep: nested too deeply") from exc
        except ValueError as exc:  # an integer of more digits than Python converts
            raise self.error("sweep: a number has too many digits") from exc
        if count and (int(count), int(base or 0)) != seed_fields(p):  # untouched: the preset's own seeds
            over["generate.seeds"] = {"count": int(count), "base": int(base or 0)}
        if k and int(k) > 0:
            over["filter.config.top_k"] = int(k)
        return over

    def submit(self, files, text_p, neg, preset_name, filled_from, name, text, pts, mfile, gen, sweep_text, count,
               base, k, *values) -> str:
        """Check the form and queue the job; returns its id (errors are shown in the page).

        ``filled_from`` is the preset the form was last filled from: when Run comes before the form has
        caught up with a newly picked preset, the form still holds the old preset's settings, so the new
        preset runs as it is written.
        """
        paths = paths_of(files)
        if not paths:
            raise self.error("Upload at least one reference photo.")
        if preset_name not in self.presets:
            raise self.error("Choose a recipe preset.")
        if filled_from != preset_name:
            name, text_p, neg = None, None, None
            over: dict[str, Any] = {}
        else:
            over = self.overrides(preset_name, name, text, pts, gen, sweep_text, count, base, k, values)
        wants_mask = "mask" in masker_accepts(name) if name else False
        if any(not Path(p).is_file() for p in [*paths, *(paths_of(mfile) if wants_mask else [])]):
            # Gradio deletes its copies of uploads after --ui-files-max-age
            raise self.error("The uploaded photos are no longer on the server (uploads are kept for a while "
                             "only): upload them again.")
        masks = [Path(paths_of(mfile)[0]).read_bytes()] * len(paths) if wants_mask and paths_of(mfile) else []
        if wants_mask and not masks and not (self.presets[preset_name].get("mask") == name):
            raise self.error(f"The {name} masker needs a mask image: upload one under Product mask.")
        try:
            job = submit_job(self.manager, self.recipes_dir, self.limits,
                             references=[Path(p).read_bytes() for p in paths], masks=masks, preset=preset_name,
                             prompt=text_p, negative_prompt=neg, overrides=over, names=[Path(p).name for p in paths])
        except EcomforgeError as exc:
            raise self.error(exc.one_line()) from exc
        return job.id

    # --- following a job --------------------------------------------------------------------------
    def _claim(self, session: str | None) -> int:
        with self._lock:
            view = next(self._counter)
            if session:
                self._views[session] = view
            return view

    def _replaced(self, session: str | None, view: int) -> bool:
        return session is not None and self._views.get(session) != view

    def follow(self, jid: str | None, session: str | None = None, show_preset: bool = False):
        """Yield (status, gallery, picks, records, job id, job list, preset) as the job changes, until it stops.

        A newer view in the same browser session (another Run, a job picked from the list) ends this one.
        ``show_preset`` (a job picked from the list, or brought back by a reload) also sets the preset
        dropdown to the job's, so the form describes the job on show.
        """
        import gradio as gr

        view = self._claim(session)
        if not jid or self.manager.get(jid) is None:
            yield (IDLE, [], gr.update(choices=[], value=[]), [], None, self.job_list(None), gr.skip())
            return
        shown, listed = None, None
        while (job := self.manager.get(jid)) is not None:
            res = job_results(self.manager, job, self.thumbs)
            sig = [c for _, c in res.items]
            # The job list is refreshed when this job's state changes (its line shows the state).
            jobs = self.job_list(jid) if job.state != listed else gr.skip()
            preset = job.recipe if show_preset and listed is None and job.recipe in self.presets else gr.skip()
            listed = job.state
            if sig != shown:  # a new candidate, or the scores arrived: refresh the gallery
                shown = sig
                # Candidates not scored yet (a stopped job's) can be downloaded too: what a job made stays.
                picks = [(f"{c} · {r['id'][:8]}", r["id"]) for (_, c), r in zip(res.items, res.records)]
                yield (status_html(self.manager.view(job), res), res.items, gr.update(choices=picks, value=[]),
                       res.records, jid, jobs, preset)
            else:
                yield status_html(self.manager.view(job), res), gr.skip(), gr.skip(), gr.skip(), jid, jobs, preset
            if job.state in TERMINAL:
                return
            time.sleep(POLL_S)
            if self._replaced(session, view):
                return

    def job_list(self, jid: str | None) -> Any:
        """The job list's new choices, and a line under it that says how many jobs there are: with none picked
        (a fresh browser) the list would look empty although the server has jobs."""
        import gradio as gr

        choices = job_choices(self.manager)
        if not choices:
            info = "No jobs yet: Run starts one."
        else:
            info = f"{plural(len(choices), 'job')} on this server" + ("" if jid else ": open the list to pick one")
        return gr.update(choices=choices, value=jid, info=info)

    def cancel(self, jid: str | None) -> None:
        """Ask the job to stop; what it made so far stays and is shown."""
        if not jid:
            raise self.error("No job to cancel.")
        try:
            self.manager.cancel(jid)
        except EcomforgeError as exc:
            raise self.error(exc.one_line()) from exc

    def resume(self, jid: str | None, session: str | None = None):
        """Queue a cancelled, interrupted or failed job again and follow it (done work is kept)."""
        if not jid:
            raise self.error("Choose a job in the job list first.")
        try:
            self.manager.resume(jid)
        except EcomforgeError as exc:
            raise self.error(exc.one_line()) from exc
        yield from self.follow(jid, session)

    def rerun_job(self, jid: str | None, session: str | None = None):
        """The whole job again, as a new job with the same photos, masks and recipe."""
        if not jid:
            raise self.error("Choose a job in the job list first.")
        try:
            job = rerun_job(self.manager, self.recipes_dir, self.limits, jid)
        except EcomforgeError as exc:
            raise self.error(exc.one_line()) from exc
        yield from self.follow(job.id, session)

    def rerun_candidate(self, jid: str | None, cid: str | None, session: str | None = None):
        """One candidate again (its reference, seed and sweep point) as a new job."""
        if not jid or not cid:
            raise self.error("Select a scored result in the gallery first.")
        try:
            job = rerun_candidate(self.manager, self.recipes_dir, self.limits, jid, cid)
        except EcomforgeError as exc:
            raise self.error(exc.one_line()) from exc
        yield from self.follow(job.id, session)

    # --- results ----------------------------------------------------------------------------------
    def select(self, recs, evt):
        """(candidate id, details) of the clicked gallery item."""
        if not recs or evt.index is None or evt.index >= len(recs):
            return None, None
        r = recs[evt.index]
        if not r.get("scored", True):
            return None, {"id": r["id"], "note": "generated; scores come when the job's scoring step runs"}
        keys = ("id", "total", "scores", "score_reasons", "kept", "reason", "seed", "params", "plugin", "reference")
        return r["id"], {k: r.get(k) for k in keys if k in r}

    def make_zip(self, jid: str | None, ids: list[str] | None) -> str:
        """A zip of the picked results (``ids``) or all of them; returns its path for the download box."""
        from .api import iter_zip, zip_records

        if not jid:
            raise self.error("Run a job first.")
        job = self.manager.get(jid)
        if job is None or not job.run_dir or not (self.manager.store.job_dir(jid) / job.run_dir / "manifest.jsonl").is_file():
            raise self.error("No results yet.")
        root = self.manager.store.job_dir(jid) / job.run_dir
        if ids is not None and not ids:
            raise self.error("Pick some results first.")
        try:
            records = zip_records(root, job, ",".join(ids) if ids else None)
            if ids:  # in the job's order, whatever order they were picked in: one selection, one zip
                order = {r["id"]: i for i, r in enumerate(zip_records(root, job, None))}
                records.sort(key=lambda r: order[r["id"]])
        except EcomforgeError as exc:
            raise self.error(exc.one_line()) from exc
        if not records:
            raise self.error("This job has made no candidates yet.")
        folder = self._zip_folder()
        out = folder / f"{jid}-{'picked' if ids else 'all'}.zip"
        try:
            with open(out, "wb") as f:  # written as it is made: never the whole zip in memory
                for chunk in iter_zip(root, records, self.manager, jid):
                    f.write(chunk)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return str(out)

    def _zip_folder(self) -> Path:
        """A new folder for one download under ``thumbs/zips``; all but the newest ``MAX_ZIPS`` are deleted.

        Gradio copies the file it is given into its own cache (deleted after --ui-files-max-age), so
        an older zip here is not needed once it is shown: the server's disk holds at most MAX_ZIPS of them.
        """
        root = self.thumbs / "zips"
        root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            folder = root / f"{time.time_ns():020d}-{next(self._counter)}"
            folder.mkdir()
            for old in sorted(p for p in root.iterdir() if p.is_dir())[:-MAX_ZIPS]:
                shutil.rmtree(old, ignore_errors=True)
        return folder
