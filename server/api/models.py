"""GET /models: every configured model name per kind, where it comes from, and whether it is loaded."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..loaders import KINDS
from .errors import hide_paths

router = APIRouter()


@router.get("/models")
def models(request: Request):
    config, loaded = request.app.state.settings.models, set(request.app.state.store.loaded())
    # A local file shows as its name only: the machine's folder layout is not the client's business.
    return {kind: [{"name": n, "source": hide_paths(config.get(kind, n).source), "loaded": f"{kind}:{n}" in loaded}
                   for n in config.names(kind)]
            for kind in KINDS}
