"""Checks shared by the routes: JSON bodies, known jobs, and a model's files on this machine (a spec's every check:
spec_checks.py)."""

from __future__ import annotations

from fastapi import HTTPException, Request

from ..loaders import hub
from ..protocol.inputs import decode_json


async def json_body(request: Request, where: str, hint: str = ""):
    """The request's JSON body, decoded through the validation layer. Only application/json is read as JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(415, f"send the body as application/json (got {content_type or 'no content type'})")
    return decode_json(await request.body(), where, hint)


def job_or_404(request: Request, job_id: str):
    job = request.app.state.queue.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id[:80]!r}")
    return job


def require_files(entry):
    """409 naming the model, its download size and what to do when its files are not on this machine: a job
    is refused before anything renders instead of failing in the loader."""
    found = hub.availability(entry)
    if not found["available"]:
        size = hub.download_size(entry)
        raise HTTPException(
            409,
            {
                "message": hub.missing_message(entry, found["where"], size),
                "kind": entry.kind,
                "name": entry.name,
                "source": entry.source,
                "size": size,
                "missing": True,
                "downloadable": not entry.local,
            },
        )
