"""``ecomforge models pull ID`` and ``ecomforge models list``: weights in the local model folder."""
from __future__ import annotations

import json

import click

from ecomforge.errors import ModelNotFound
from ecomforge.models import models_dir, offline

from .families import MOVED

# A pipeline's safetensors weights and configs; root-level .ckpt/.safetensors single files and
# pickle .bin duplicates are skipped (they double the download and are not loaded anyway).
DEFAULT_PATTERNS = ["model_index.json", "*/*.json", "*/*.txt", "*/diffusion_pytorch_model.safetensors",
                    "*/model.safetensors"]
@click.group("models")
def models_group() -> None:
    """Fetch or show model weights in the local model folder ($ECOMFORGE_MODELS)."""


@models_group.command("pull")
@click.argument("model_id")
@click.option("--revision", default=None, help="Branch, tag or commit of the hub repo.")
@click.option("--variant", default=None, help="Weights variant to fetch instead, e.g. fp16.")
@click.option("--include", "patterns", multiple=True, help="Glob of files to fetch (repeatable; replaces the defaults).")
def pull(model_id: str, revision: str | None, variant: str | None, patterns: tuple[str, ...]) -> None:
    """Download a hub model (diffusers layout, safetensors only) into the model folder."""
    target = models_dir() / model_id
    if offline():
        raise ModelNotFound(f"cannot pull '{model_id}': downloads are off (HF_HUB_OFFLINE/ECOMFORGE_OFFLINE is set)",
                            hint=f"unset it, or copy a diffusers folder to {target}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    allow = list(patterns) or [p.replace(".safetensors", f".{variant}.safetensors") if variant else p
                               for p in DEFAULT_PATTERNS]
    try:
        path = snapshot_download(model_id, revision=revision, local_dir=str(target), allow_patterns=allow)
    except GatedRepoError as exc:  # a subclass of RepositoryNotFoundError: test it first
        raise ModelNotFound(f"'{model_id}' is gated on the hub: accept its licence on its hub page, then log in "
                            "with `hf auth login`") from exc
    except RepositoryNotFoundError as exc:
        moved = MOVED.get(model_id)
        raise ModelNotFound(f"'{model_id}' was not found on the hub",
                            hint=f"it moved to '{moved}'" if moved else
                            "check the id (owner/name); a private repo needs `hf auth login`") from exc
    except RevisionNotFoundError as exc:
        raise ModelNotFound(f"'{model_id}' has no revision '{revision}' on the hub") from exc
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise ModelNotFound(f"could not download '{model_id}': {str(exc).splitlines()[0]}",
                            hint=f"check the network, or copy a diffusers folder to {target}") from exc
    click.echo(f"pulled {model_id} -> {path}")


def _local_models() -> list[dict]:
    """Diffusers folders and loose single-file checkpoints under the model folder."""
    root = models_dir()
    if not root.is_dir():
        return []
    folders = sorted(index.parent for index in root.rglob("model_index.json"))
    found = [{"id": str(f.relative_to(root)), "where": str(f), "source": "ecomforge",
              "size": sum(p.stat().st_size for p in f.rglob("*") if p.is_file())} for f in folders]
    for single in sorted(root.rglob("*.safetensors")):
        if not any(f in single.parents for f in folders):  # weights inside a pipeline folder are listed with it
            found.append({"id": str(single.relative_to(root)), "where": str(single), "source": "ecomforge",
                          "size": single.stat().st_size})
    return found


def _hf_cache_models() -> list[dict]:
    """Model repos in the Hugging Face cache (what from_pretrained finds offline)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir()
    except CacheNotFound:
        return []
    return [{"id": r.repo_id, "where": str(r.repo_path), "size": r.size_on_disk, "source": "hf-cache"}
            for r in sorted(cache.repos, key=lambda r: r.repo_id) if r.repo_type == "model"]


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_models(as_json: bool) -> None:
    """Show models in the model folder and in the Hugging Face cache."""
    rows = _local_models() + _hf_cache_models()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no models in {models_dir()} or the Hugging Face cache")
        return
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        click.echo(f"{r['id']:<{width}}  {r['size'] / 1e6:>9.1f} MB  {r['source']:<9}  {r['where']}")
