"""The /jobs resource: submit (spec + guides), status, the event stream, frames, previews, manifest, cancel."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.datastructures import UploadFile

from ..engine.jobs import is_disk_full
from ..log import log
from ..protocol import (
    FINAL_EVENTS,
    FORM_SPEC,
    SpecError,
    format_event,
    frame_filename,
    parse_spec,
)
from ..protocol.inputs import decode_json, parse_event_id
from .blocking import off_loop
from .checks import job_or_404
from .errors import disk_full_response, public
from .guides import GUIDE_FIELDS, store_submission, upload_problems
from .spec_checks import check_spec

router = APIRouter()
KEEPALIVE_S = 15.0


async def _read_submission(request: Request) -> tuple[dict, dict[str, list[bytes]]]:
    """(the raw spec, the uploaded guide files by form field) from a JSON or multipart body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        return decode_json(await request.body(), FORM_SPEC), {}
    if content_type != "multipart/form-data":
        raise HTTPException(415, "send multipart/form-data (spec + guides) or application/json (spec only)")
    form = await request.form(max_files=4096, max_fields=64, max_part_size=32 * 2**20)
    errors = []
    for name, value in form.multi_items():
        if name == FORM_SPEC:
            continue
        if name not in GUIDE_FIELDS:
            errors.append((name[:40], f"unknown form field; the fields are {FORM_SPEC} and {', '.join(GUIDE_FIELDS)}"))
        elif not isinstance(value, UploadFile):
            errors.append((name, "must be a file part (with a filename), not a text field"))
    specs = form.getlist(FORM_SPEC)
    if len(specs) != 1:
        errors.append((FORM_SPEC, "the multipart form needs one 'spec' field holding the JSON spec"))
    if errors:
        raise SpecError(errors[:20])
    raw = specs[0] if isinstance(specs[0], str) else await specs[0].read()
    return decode_json(raw, FORM_SPEC), {name: [await f.read() for f in form.getlist(name)] for name in GUIDE_FIELDS}


@router.post("/jobs", status_code=202)
async def submit(request: Request):
    state = request.app.state
    data, parts = await _read_submission(request)
    spec = parse_spec(data)
    try:
        job = await off_loop(request, _prepare, state, spec, parts)  # one hop: the loop waits on it only once
    except OSError as e:
        if not is_disk_full(e):
            raise
        log.error("job submission refused, disk full: %s", e)
        return disk_full_response(e)
    try:
        state.queue.submit(job)
    except BaseException:
        await off_loop(request, state.queue.discard, job)
        raise
    return {"id": job.id}


def _prepare(state, spec, parts):
    """Check the spec and the guides in full (every problem in one answer), then make the job folder with the
    guides and the queued manifest; nothing is left behind if that fails (blocking: runs on the executor)."""
    check_spec(state.settings.models, spec, lambda: upload_problems(spec, parts))  # may read a checkpoint's keys
    job = state.queue.new_job(spec)
    try:
        store_submission(job, parts)
    except BaseException:
        state.queue.discard(job)
        raise
    return job


@router.get("/jobs/{job_id}")
def status(job_id: str, request: Request):
    job = job_or_404(request, job_id)
    return {
        "id": job.id,
        "state": job.state,
        "position": request.app.state.queue.position(job),
        "step": job.step,
        "steps": job.steps,
        "frames": job.spec.frames,
        "frames_ready": sorted(job.frames_ready),
        "error": None if job.error is None else public(job.error),
    }


@router.get("/jobs/{job_id}/events")
async def events(job_id: str, request: Request):
    after = parse_event_id(request.headers.get("last-event-id"))
    job = job_or_404(request, job_id)

    async def stream():
        # Woken by the job's emit through the loop (no thread per client); the keep-alive lets a client notice a
        # dead connection. A finished job's stream ends after its final event, also when resumed past it.
        wake = job.watch()
        seq = after
        try:
            while True:
                wake.clear()
                finished = job.finished  # read before the events: a final event emitted after is in the next batch
                for event_id, kind, data in job.events_after(seq):
                    seq = event_id
                    yield format_event(event_id, kind, public(data))
                    if kind in FINAL_EVENTS:
                        return
                if finished:
                    return
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
        finally:
            job.unwatch(wake)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get("/jobs/{job_id}/frames/{index}")
def frame(job_id: str, index: int, request: Request):
    job = job_or_404(request, job_id)
    if index not in job.frames_ready or not job.frame_path(index).exists():
        raise HTTPException(404, f"frame {index} of job {job_id} is not ready; ready: {sorted(job.frames_ready)}")
    return FileResponse(job.frame_path(index), media_type="image/png", filename=frame_filename(index))


@router.get("/jobs/{job_id}/previews/{step}")
def preview(job_id: str, step: int, request: Request):
    job = job_or_404(request, job_id)
    path = job.folder / "previews" / f"step_{step:04d}.png"
    if not 0 < step < 10**4 or not path.exists():
        raise HTTPException(404, f"no preview for step {step} of job {job_id} (latest step: {job.step})")
    return FileResponse(path, media_type="image/png")


@router.get("/jobs/{job_id}/manifest")
def manifest(job_id: str, request: Request):
    job = job_or_404(request, job_id)
    try:
        data = json.loads((job.folder / "manifest.json").read_text())
    except (OSError, ValueError):
        raise HTTPException(404, f"job {job_id} has no readable manifest") from None
    return JSONResponse(public(data))


@router.delete("/jobs/{job_id}")
def cancel(job_id: str, request: Request):
    job = job_or_404(request, job_id)
    if not job.finished:
        request.app.state.queue.cancel(job)
    return {"id": job.id, "state": job.state, "cancel_requested": True}
