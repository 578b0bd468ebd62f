"""The FastAPI application: API routes, error shapes, security middleware, and the Gradio UI mounted at /."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from .. import __version__
from ..errors import EcomforgeError
from .api import error, make_router
from .manager import JobConflict, JobManager, JobNotFound, QueueFull
from .recipes import PresetNotFound
from .security import BodyLimitMiddleware, TokenMiddleware
from .uploads import Limits, TooLarge

log = logging.getLogger("ecomforge.web")


@dataclass
class ServerConfig:
    """Everything ``ecomforge serve`` decides."""

    runs: Path = Path("runs")
    recipes: Path = Path("recipes")
    token: str | None = None
    limits: Limits = field(default_factory=Limits)
    workers: int = 1
    queue_size: int = 8
    device: str = "auto"
    ui: bool = True


def status_of(exc: EcomforgeError) -> int:
    """The HTTP status for one of our errors."""
    for cls, status in ((TooLarge, 413), (QueueFull, 429), (JobNotFound, 404), (PresetNotFound, 404),
                        (JobConflict, 409)):
        if isinstance(exc, cls):
            return status
    return 400 if exc.exit_code == 2 else 500


def create_app(config: ServerConfig) -> FastAPI:
    """The whole server as one ASGI app; workers start and stop with the app's lifespan."""
    manager = JobManager(config.runs, workers=config.workers, queue_size=config.queue_size, device=config.device)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        manager.start()
        try:
            yield
        finally:
            manager.stop()

    app = FastAPI(title="ecomforge", version=__version__, lifespan=lifespan,
                  description="Turn a few reference photos of a product into many faithful product images.")
    app.state.manager = manager
    app.state.config = config

    @app.exception_handler(EcomforgeError)
    async def ecomforge_error(request: Request, exc: EcomforgeError):
        return error(status_of(exc), exc.one_line())

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return error(400, f"{where or 'request'}: {first.get('msg', 'invalid')}")

    app.include_router(make_router(manager, Path(config.recipes), config.limits))
    if config.ui:
        import gradio as gr

        from .ui import build_ui

        blocks = build_ui(manager, Path(config.recipes), config.limits)
        gr.mount_gradio_app(app, blocks, path="", allowed_paths=[str(manager.root)],
                            blocked_paths=[f"{manager.store.path}{x}" for x in ("", "-wal", "-shm", "-journal")], max_file_size=config.limits.max_file_bytes,
                            footer_links=["api"], theme=gr.themes.Soft())
    app.add_middleware(BodyLimitMiddleware, limit=config.limits.max_request_bytes)
    app.add_middleware(TokenMiddleware, token=config.token)
    return app
