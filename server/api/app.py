"""The app factory: `create_app(Settings(...))` builds the whole server; tests call it with their own settings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse

from .. import __version__
from .. import log as server_log
from ..engine.executor import Executor, LocalExecutor
from ..engine.job_queue import JobQueue
from ..engine.store import ModelStore
from ..loaders import ModelConfig, hub
from ..loaders.family import FAMILIES
from ..loaders.hashes import HASHES
from . import downloads, errors, health, jobs, models, plan, pose
from .guard import Guard
from .limits import BodyLimit
from .schema import declare_bodies

BLOCKING_WORKERS = 2  # hashing, plotting, model inspection, guide decoding and saving: never on the event loop


@dataclass
class Settings:
    models: ModelConfig
    data_dir: Path
    token: str | None = None
    device: str | None = None
    dtype: str | None = None
    max_upload_mb: int = 512
    host: str = "127.0.0.1"  # the bound address: Host headers must name it (or loopback)
    allowed_hosts: tuple[str, ...] = ()  # more names the server answers to (--allow-host)
    log_dir: Path | None = None  # where server.log goes; default: the data folder above data_dir
    history: int = 64  # finished jobs kept in memory (all stay on disk)
    extra: dict = field(default_factory=dict)


def create_app(settings: Settings, executor: Executor | None = None) -> FastAPI:
    """The server; jobs run on `executor` (default: in this process on its own model store)."""
    log_dir = settings.log_dir or Path(settings.data_dir).parent
    server_log.setup(log_dir)
    store = ModelStore(settings.models, settings.device, settings.dtype)
    HASHES.keep_in(Path(settings.data_dir).parent / "file_hashes.json")  # beside server.log: a restart rehashes nothing
    FAMILIES.keep_in(Path(settings.data_dir).parent / "file_families.json")  # model families read from headers
    executor = executor or LocalExecutor(store)
    queue = JobQueue(settings.data_dir, executor, history=settings.history)
    blocking = ThreadPoolExecutor(BLOCKING_WORKERS, thread_name_prefix="marionette-blocking")

    app = FastAPI(title="Marionette server", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, limit=settings.max_upload_mb * 2**20)
    app.add_middleware(Guard, settings=settings)  # outermost: refuses before a body is read
    app.state.store, app.state.queue, app.state.settings = store, queue, settings
    app.state.executor = executor
    app.state.blocking = blocking

    def shutdown():
        queue.stop()
        blocking.shutdown(wait=False, cancel_futures=True)
        server_log.log.info("server stopped")
        server_log.close(log_dir)

    app.router.on_shutdown.append(shutdown)
    errors.install(app)
    hub.configure(settings.extra.get("hub_endpoint"), settings.extra.get("hub_cache"))
    for module in (health, models, downloads, plan, jobs, pose):
        app.include_router(module.router)

    # The docs routes are ordinary routes here, so the token rule covers them like every other.
    @app.get("/openapi.json", include_in_schema=False)
    async def openapi():
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

    @app.get("/redoc", include_in_schema=False)
    async def redoc():
        return get_redoc_html(openapi_url="/openapi.json", title=app.title)

    declare_bodies(app)
    server_log.log.info(
        "server started: data %s, device %s, %d interrupted jobs found",
        settings.data_dir,
        executor.describe()["device"],
        len(queue.recovered),
    )
    return app
