"""Server paths out of what a web user reads: job errors, failure reasons, API and UI messages.

A message from a plugin may name any file of the server (a model cache, the home folder, the presets
folder). The folders the server knows are shown by name (``<runs>``, ``<recipes>``, ``<models>``);
any other absolute path is replaced whole, so no layout of the machine reaches a browser.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

# An absolute (or ~) path: not inside a word, a URL (``https://host/x``) or a name shown already (``<runs>/x``),
# and not one of this server's own routes (``GET /api/recipes lists them``).
ABSOLUTE = re.compile(r"(?<![\w.~:/<>%-])(?!/(?:api|gradio_api)/)(?:~[\w.-]*)?/[^\s'\"`,;()<>\[\]|]+")
HIDDEN = "<server path>"


def known_folders(runs: Path | None = None, recipes: Path | None = None) -> list[tuple[str, str]]:
    """(folder, shown name) pairs, longest first: the runs and presets folders, the model caches, the server's
    current and home folders."""
    from ..models import models_dir

    hf = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    named = [(runs, "<runs>"), (recipes, "<recipes>"), (models_dir(), "<models>"), (Path(hf), "<hf-cache>"),
             (Path(os.environ["HF_HUB_CACHE"]) if os.environ.get("HF_HUB_CACHE") else None, "<hf-cache>"),
             (Path.cwd(), HIDDEN), (Path.home(), HIDDEN)]  # whole, so a space in their names hides nothing
    pairs = {(str(form), shown) for folder, shown in named if folder is not None
             for form in (Path(folder).expanduser().absolute(), Path(os.path.realpath(Path(folder).expanduser())))}
    return sorted(pairs, key=lambda p: -len(p[0]))


def scrub_text(text: str, folders: Iterable[tuple[str, str]], *, every_path: bool = True) -> str:
    """``text`` with each known folder shown by its name and, with ``every_path``, any other absolute path hidden."""
    for folder, shown in folders:
        if folder not in ("", "/"):  # the whole folder only: /srv/runs, not the start of /srv/runs2
            text = re.sub(re.escape(folder) + r"(?![^/\\\s'\"`,;:)\]}>])", shown.replace("\\", "\\\\"), text)
    return ABSOLUTE.sub(HIDDEN, text) if every_path else text
