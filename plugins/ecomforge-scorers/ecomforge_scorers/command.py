"""``ecomforge bench fidelity``: the scorer benchmark as a CLI command, with rich tables."""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from ecomforge.errors import UsageError


@click.group()
def bench() -> None:
    """Benchmarks of installed plugins."""


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@bench.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-out/fidelity"),
              show_default=True, help="Folder for fidelity.json and variants.png.")
@click.option("--scorers", help="Comma-separated scorer names (default: color,keypoints,clip-image,dino,lpips).")
@click.option("--products", help="Comma-separated DreamBench product names, skimage photos or image paths.")
@click.option("--model", "models", multiple=True, metavar="SCORER=PATH",
              help="Model for a learned scorer, e.g. clip-image=ViT-B-32/laion2b_s34b_b79k or dino=/models/dinov2-small.")
@click.option("--tiny", is_flag=True, help="Use tiny RANDOM-weight CLIP/DINOv2 where no --model is given "
                                           "(checks the harness; the figures mean nothing).")
@click.option("--size", default=256, show_default=True, type=click.IntRange(64, 2048), help="Long side of the photos (px).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random transform parameters.")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or mps.")
@click.option("--views", is_flag=True, help="Also score other real photos of each DreamBench product against "
                                            "photos of other products (AUROC same vs other).")
def fidelity(out_dir: Path, scorers: str | None, products: str | None, models: tuple[str, ...], tiny: bool,
             size: int, seed: int, device: str, views: bool) -> None:
    """Score benign variants and distortions of real product photos; report each scorer's AUROC."""
    from .fidelity import run_fidelity

    chosen = {}
    for item in models:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise UsageError(f"--model {item!r}: expected SCORER=PATH")
        chosen[name.strip()] = path.strip()
    command = _command_line(click.get_current_context())
    result = run_fidelity(out_dir, _split(scorers), _split(products), models=chosen, tiny=tiny, size=size, seed=seed,
                          device=device, command=command, views=views)
    print_tables(result)
    click.echo(f"wrote {out_dir / 'fidelity.json'} and {out_dir / 'variants.png'}")


def _command_line(ctx: click.Context) -> str:
    """The command as typed, rebuilt from the parsed options that differ from their defaults."""
    parts = ["ecomforge bench fidelity"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value in (None, False, ()) or value == param.default:
            continue
        flag = param.opts[0]
        for item in value if isinstance(value, tuple) else (value,):
            parts.append(flag if item is True else f"{flag} {shlex.quote(str(item))}")
    return " ".join(parts)


def print_tables(result: dict) -> None:
    """A summary table (AUROC per scorer) and a table of mean score per transform."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, Console().width))  # the tables need ~100 columns, also in logs
    columns = dict(result["scorers"])
    if result.get("combined"):
        columns["combined"] = result["combined"]
    summary = Table(title=f"Fidelity: benign vs distorted, {len(result['products'])} products "
                          f"× {sum(len(v) for v in result['transforms'].values())} variants")
    for head in ("scorer", "model", "weights", "AUROC", "AUROC/prod", "benign", "distorted", "ms/cand"):
        summary.add_column(head, justify="left" if head in ("scorer", "model", "weights") else "right")
    for name, entry in columns.items():
        model = Path(entry["model"]).name if "model" in entry else "mean of the above"
        weights = "[yellow]RANDOM[/yellow]" if entry.get("random_weights") else ("" if entry.get("model", "-") == "-" else "trained")
        ms = f"{1000 * entry['seconds_per_candidate']:.1f}" if "seconds_per_candidate" in entry else ""
        summary.add_row(name, model, weights, f"{entry['auroc']:.3f}", f"{entry['auroc_per_product_mean']:.3f}",
                        f"{entry['mean_benign']:.3f}", f"{entry['mean_distorted']:.3f}", ms)
    console.print(summary)
    per = Table(title="Mean score per transform")
    per.add_column("transform")
    per.add_column("kind")
    for name in columns:
        per.add_column(name, justify="right")
    for kind, names in result["transforms"].items():
        for t in names:
            per.add_row(t, kind, *[f"{columns[c]['per_transform'][t]:.3f}" for c in columns])
    console.print(per)
    if result.get("views", {}).get("summary"):
        real = Table(title="Real photos: other shots of the same product vs other products")
        for head in ("scorer", "AUROC", "same product", "other product"):
            real.add_column(head, justify="left" if head == "scorer" else "right")
        for name, entry in result["views"]["summary"].items():
            real.add_row(name, f"{entry['auroc']:.3f}", f"{entry['mean_same']:.3f}", f"{entry['mean_other']:.3f}")
        console.print(real)
    for name, reason in result["skipped"].items():
        console.print(f"[dim]skipped {name}: {reason}[/dim]")
