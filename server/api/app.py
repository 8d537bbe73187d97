"""The app factory: `create_app(Settings(...))` builds the whole server; tests call it with their own settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Depends, FastAPI

from .. import __version__
from ..engine.jobs import JobQueue
from ..engine.runner import run_job
from ..engine.store import ModelStore
from ..loaders import ModelConfig, hub
from ..protocol import SpecError
from . import downloads, health, jobs, models, plan, pose
from .auth import require_token
from .checks import spec_error_response
from .limits import BodyLimit


@dataclass
class Settings:
    models: ModelConfig
    data_dir: Path
    token: str | None = None
    device: str | None = None
    dtype: str | None = None
    max_upload_mb: int = 512
    extra: dict = field(default_factory=dict)


def create_app(settings: Settings) -> FastAPI:
    store = ModelStore(settings.models, settings.device, settings.dtype)
    queue = JobQueue(settings.data_dir, lambda job: run_job(job, store))

    app = FastAPI(title="Marionette server", version=__version__, dependencies=[Depends(require_token)])
    app.add_middleware(BodyLimit, limit=settings.max_upload_mb * 2**20)
    app.state.store, app.state.queue, app.state.settings = store, queue, settings
    app.router.on_shutdown.append(queue.stop)

    @app.exception_handler(SpecError)
    async def spec_error(_request, exc: SpecError):
        return spec_error_response(exc.errors)

    hub.configure(settings.extra.get("hub_endpoint"), settings.extra.get("hub_cache"))
    for module in (health, models, downloads, plan, jobs, pose):
        app.include_router(module.router)
    return app
