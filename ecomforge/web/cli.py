"""``ecomforge serve``: the web UI and HTTP API (FastAPI, Gradio and uvicorn are imported only when it runs)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ..cli.group import cli

MAX_CONNECTIONS = 100  # uvicorn's limit_concurrency: with this many connections or requests, new requests get 503
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this
MAX_HEADER_BYTES = 16 * 1024  # a request line and headers not finished within this many bytes are refused (h11)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (others need --token).")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--token", default=None, help="Access token for the API and UI (or env ECOMFORGE_TOKEN).")
@click.option("--runs", default="runs", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of job run folders and the job database.")
@click.option("--recipes", default="recipes", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of recipe presets (*.yaml).")
@click.option("--queue-size", default=8, show_default=True, type=click.IntRange(1, 10_000),
              help="Jobs that may wait; more are refused with HTTP 429.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Jobs that run at once (one per device).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where models run.")
@click.option("--no-ui", is_flag=True, help="Serve only the HTTP API.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Another Host name requests may use (e.g. a proxy's public name); repeatable.")
@click.option("--allow-origin", "allow_origins", multiple=True, metavar="URL",
              help="Another origin whose pages may call the API (e.g. https://shop.example); repeatable.")
@click.option("--allow-model", "allow_models", multiple=True, metavar="ID|PATH",
              help="A model id or local model folder/file requests may name besides the presets'; repeatable.")
@click.option("--allow-urls", is_flag=True, help="Let requests name http(s) URLs where a stage accepts them.")
@click.option("--ui-files-max-age", default=3600, show_default=True, type=click.IntRange(60, 7 * 86400),
              metavar="SECONDS", help="The UI's copies of uploads and shown images older than this are deleted.")
@click.option("--max-connections", default=MAX_CONNECTIONS, show_default=True, type=click.IntRange(4, 100_000),
              help="With this many connections open (or requests running), a new request gets HTTP 503.")
@click.option("--keep-alive", default=KEEP_ALIVE_S, show_default=True, type=click.IntRange(1, 600), metavar="SECONDS",
              help="An idle keep-alive connection is closed after this many seconds.")
def serve(host: str, port: int, token: str | None, runs: Path, recipes: Path, queue_size: int, workers: int,
          device: str, no_ui: bool, allow_hosts: tuple[str, ...], allow_origins: tuple[str, ...],
          allow_models: tuple[str, ...], allow_urls: bool, ui_files_max_age: int, max_connections: int,
          keep_alive: int) -> None:
    """Serve the web UI and the HTTP API (OpenAPI at /openapi.json)."""
    from .security import check_bind

    token = token or os.environ.get("ECOMFORGE_TOKEN") or None
    check_bind(host, token)
    try:
        import uvicorn

        from .app import ServerConfig, create_app
        from .trust import PathPolicy
    except ImportError as exc:
        raise click.UsageError(f"the web server needs extra packages ({exc.name}): pip install 'ecomforge[web]'") from exc
    models = tuple(str(Path(m).expanduser().resolve()) if Path(m).expanduser().exists() else m for m in allow_models)
    app = create_app(ServerConfig(runs=runs, recipes=recipes, token=token, workers=workers, queue_size=queue_size,
                                  device=device, ui=not no_ui, host=host, allowed_hosts=allow_hosts,
                                  allowed_origins=allow_origins, policy=PathPolicy(models=models, allow_urls=allow_urls),
                                  ui_files_max_age=ui_files_max_age))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    click.echo(f"ecomforge serving http://{shown}:{port}/{'?token=<your token>' if token else ''} "
               f"(API docs: /docs, jobs in {runs})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", **connection_limits(max_connections, keep_alive))


def connection_limits(max_connections: int = MAX_CONNECTIONS, keep_alive: int = KEEP_ALIVE_S) -> dict[str, Any]:
    """What uvicorn is told about connections: how many at once, idle keep-alive, the size of unfinished headers.

    h11 (not httptools) so the header bound holds whichever parser is installed. A client that sends its
    headers or body slowly still holds its connection (uvicorn has no read timeout): these limits bound
    what each costs and how many requests run, and a reverse proxy with read timeouts keeps such clients out.
    """
    return {"http": "h11", "limit_concurrency": max_connections, "timeout_keep_alive": keep_alive,
            "h11_max_incomplete_event_size": MAX_HEADER_BYTES, "timeout_graceful_shutdown": 10}

