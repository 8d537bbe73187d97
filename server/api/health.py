"""GET /health and POST /release: is the server up, what is loaded, and giving memory back."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from .. import __version__

# What tells this server from another program on the port: the add-on checks it before it uses or adopts one.
SERVICE = "marionette"

router = APIRouter()


@router.get("/health")
async def health(request: Request):
    executor, queue = request.app.state.executor, request.app.state.queue
    return {"service": SERVICE, "status": "ok", "version": __version__, **executor.describe(), "busy": not queue.idle()}


@router.post("/release")
def release(request: Request):
    executor, queue = request.app.state.executor, request.app.state.queue
    if not queue.idle():
        raise HTTPException(409, "a job is running or queued; cancel it or wait, then release")
    return {"released": True, "loaded": executor.release()}
