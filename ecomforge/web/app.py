"""The FastAPI application: API routes, error shapes, security middleware, and the Gradio UI mounted at /."""
from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from .. import __version__
from ..errors import EcomforgeError
from .api import error, make_router
from .apidocs import DOCS_CSP, docs_page
from .files import GradioFileGuard
from .login import LoginPage
from .manager import JobConflict, JobManager, JobNotFound, QueueFull
from .recipes import PresetNotFound
from .security import LOCAL_HOSTS, BodyLimitMiddleware, OriginHostMiddleware, TokenMiddleware, interface_addresses
from .trust import PathPolicy, PathRefused
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
    host: str = "127.0.0.1"  # the address bound: with loopback names, the Host names requests may use
    allowed_hosts: tuple[str, ...] = ()  # more Host names (a proxy's public name)
    allowed_origins: tuple[str, ...] = ()  # other origins that may call the API (CORS stays closed otherwise)
    policy: PathPolicy = field(default_factory=PathPolicy)  # models and URLs requests may name
    # Gradio keeps a copy of every upload and every image it shows; older ones are deleted (checked every
    # min(age, 300) s), so a page that uploads again and again fills the disk by at most an age's worth.
    ui_files_max_age: int = 3600

    def host_names(self) -> set[str]:
        """Every Host name this server answers to.

        Bound to every interface, that includes this machine's name and the addresses of its interfaces:
        a browser on the LAN that opens ``http://192.168.1.5:7860`` sends that address. An address is
        no DNS-rebinding risk (an attacker's page can only make a browser send the attacker's name).
        """
        names = {*LOCAL_HOSTS, self.host, *self.allowed_hosts}
        if self.host in ("0.0.0.0", "::", ""):  # every interface: this machine's own names too
            import socket

            names.add(socket.gethostname())
            try:
                names.update(socket.gethostbyname_ex(socket.gethostname())[2])
            except OSError:
                pass
            names.update(interface_addresses())
        return {n.lower() for n in names if n}


def status_of(exc: EcomforgeError) -> int:
    """The HTTP status for one of our errors."""
    for cls, status in ((TooLarge, 413), (QueueFull, 429), (JobNotFound, 404), (PresetNotFound, 404),
                        (JobConflict, 409), (PathRefused, 403)):
        if isinstance(exc, cls):
            return status
    return 400 if exc.exit_code == 2 else 500


def create_app(config: ServerConfig) -> FastAPI:
    """The whole server as one ASGI app; workers start and stop with the app's lifespan."""
    manager = JobManager(config.runs, workers=config.workers, queue_size=config.queue_size, device=config.device,
                         policy=config.policy, presets=Path(config.recipes))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        manager.start()
        try:
            yield
        finally:
            manager.stop()

    # No Swagger UI or ReDoc: their pages load scripts from a CDN, blank on a server without internet.
    # /docs is a plain page made here from the same schema (apidocs.py); /openapi.json is the schema itself.
    app = FastAPI(title="ecomforge", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Turn a few reference photos of a product into many faithful product images.")
    app.state.manager = manager
    app.state.config = config

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.openapi()), headers={"Content-Security-Policy": DOCS_CSP,
                                                               "X-Content-Type-Options": "nosniff"})

    @app.exception_handler(EcomforgeError)
    async def ecomforge_error(request: Request, exc: EcomforgeError):
        # Our messages name request values, never server folders; in case a plugin's does, hide them.
        return error(status_of(exc), manager.scrub_message(exc.one_line()))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return error(400, f"{where or 'request'}: {first.get('msg', 'invalid')}")

    app.include_router(make_router(manager, Path(config.recipes), config.limits))
    if config.ui:
        _mount_ui(app, manager, config)
    app.add_middleware(BodyLimitMiddleware, limit=config.limits.max_request_bytes)
    app.add_middleware(TokenMiddleware, token=config.token)
    app.add_middleware(LoginPage, token=config.token)  # browsers without the token get a sign-in form
    app.add_middleware(OriginHostMiddleware, hosts=config.host_names(), origins=set(config.allowed_origins))
    return app


def _mount_ui(app: FastAPI, manager: JobManager, config: ServerConfig) -> None:
    """Gradio at /, with its file access held to what the UI needs and its own path check switched on."""
    import gradio as gr
    from gradio.utils import get_upload_folder

    from .ui import build_ui

    age = config.ui_files_max_age
    blocks = build_ui(manager, Path(config.recipes), config.limits, delete_cache=(min(age, 300), age))
    db = str(manager.store.path)
    # The gallery's images come from the runs folder (Gradio copies them into its cache to serve them);
    # the job database is blocked by name and by its real path.
    blocked = sorted({p for base in (db, os.path.realpath(db)) for p in (base, f"{base}-wal", f"{base}-shm",
                                                                            f"{base}-journal")})
    gr.mount_gradio_app(app, blocks, path="", allowed_paths=[str(manager.root)], blocked_paths=blocked,
                        max_file_size=config.limits.max_file_bytes, footer_links=["api"], theme=gr.themes.Soft(),
                        run_history=False)  # Gradio's run history would show every user's inputs to anyone
    # Mounted apps are never marked launched, and Gradio skips its FileData path check then
    # (processing_utils._check_allowed): mark it, so inputs must be files uploaded to this server.
    blocks.has_launched = True
    app.state.blocks = blocks
    # Where this Blocks stores uploads and the copies of what it shows (Gradio's upload folder).
    app.add_middleware(GradioFileGuard, upload_folder=getattr(blocks, "GRADIO_CACHE", None) or get_upload_folder(),
                       allow_urls=config.policy.allow_urls, max_upload_files=config.limits.max_files,
                       max_upload_bytes=config.limits.max_upload_bytes)
