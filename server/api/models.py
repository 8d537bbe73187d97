"""GET /models: each configured model name per kind, its source, whether it is loaded, and whether its files are
on this machine (hub cache or local path) with their size, or the download size when the hub can be asked, and the
family of the files that are here (SD1.5, SDXL, ...: MODEL_FAMILIES). Each call lists the model roots and folders
again: the add-on's Refresh Models shows files added since start-up."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..loaders import KINDS, hub
from ..loaders.family import entry_family
from .errors import public

router = APIRouter()


def _describe(entry, loaded: set[str]) -> dict:
    found = hub.availability(entry)
    size = found["size"] if found["available"] else hub.download_size(entry)
    return {
        "name": entry.name,
        "source": entry.source,
        "loaded": f"{entry.kind}:{entry.name}" in loaded,
        "available": found["available"],
        "where": found["where"],
        "size": size,
        "downloadable": not entry.local,
        "family": entry_family(entry, found),  # "sd15", "sdxl", ... from the file's header; None: unknown or absent
    }


@router.get("/models")
def models(request: Request):
    config, loaded = request.app.state.settings.models, set(request.app.state.executor.describe()["loaded"])
    config.rescan()  # files dropped into a model root since start-up appear (directory listings only)
    # Local files show as their names only: the machine's folder layout is not the client's business.
    return public({kind: [_describe(config.get(kind, n), loaded) for n in config.names(kind)] for kind in KINDS})
