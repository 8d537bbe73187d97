"""GET /models: every configured model name per kind, its source, and whether it is loaded."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..loaders import KINDS

router = APIRouter()


@router.get("/models")
def models(request: Request):
    config, loaded = request.app.state.settings.models, set(request.app.state.store.loaded())
    return {kind: [{"name": n, "source": config.get(kind, n).source, "loaded": f"{kind}:{n}" in loaded}
                   for n in config.names(kind)]
            for kind in KINDS}
