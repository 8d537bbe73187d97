"""The /jobs resource: submit (spec + guides), status, the event stream, frames, previews, manifest, cancel."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from ..protocol import FINAL_EVENTS, FORM_SPEC, SpecError, format_event, frame_filename, guide_errors, parse_spec
from .checks import check_models, job_or_404
from .guides import GUIDE_FIELDS, decode_guides, save_guides

router = APIRouter()


async def _read_submission(request: Request) -> tuple[dict, dict[str, list[bytes]]]:
    """(the raw spec, the uploaded guide files by form field) from a JSON or multipart body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            return await request.json(), {}
        except ValueError:
            raise SpecError([("spec", "body must be JSON")]) from None
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form(max_files=4096, max_fields=64, max_part_size=32 * 2**20)
        raw = form.get(FORM_SPEC)
        if raw is None:
            raise SpecError([(FORM_SPEC, "the multipart form needs a 'spec' field holding the JSON spec")])
        try:
            data = json.loads(raw if isinstance(raw, str) else await raw.read())
        except ValueError as e:
            raise SpecError([(FORM_SPEC, f"not valid JSON: {e}")]) from None
        return data, {name: [await f.read() for f in form.getlist(name)] for name in GUIDE_FIELDS}
    raise HTTPException(415, "send multipart/form-data (spec + guides) or application/json (spec only)")


@router.post("/jobs", status_code=202)
async def submit(request: Request):
    state = request.app.state
    data, parts = await _read_submission(request)
    spec = parse_spec(data)
    await asyncio.to_thread(check_models, state.settings.models, spec)  # may read a checkpoint's keys
    errors = guide_errors(spec, {k: len(v) for k, v in parts.items()})
    if errors:
        raise SpecError(errors)
    guides = await asyncio.to_thread(decode_guides, spec, parts)
    job = state.queue.new_job(spec)
    job.guides = guides
    await asyncio.to_thread(save_guides, job.folder / "guides", guides, parts)
    state.queue.submit(job)
    return {"id": job.id}


@router.get("/jobs/{job_id}")
def status(job_id: str, request: Request):
    job = job_or_404(request, job_id)
    return {"id": job.id, "state": job.state, "position": request.app.state.queue.position(job), "step": job.step,
            "steps": job.steps, "frames": job.spec.frames, "frames_ready": sorted(job.frames_ready),
            "error": job.error}


@router.get("/jobs/{job_id}/events")
async def events(job_id: str, request: Request):
    job = job_or_404(request, job_id)
    last = request.headers.get("last-event-id", "0")
    after = int(last) if last.isdigit() else 0

    async def stream():
        seq = after
        while True:
            batch = await asyncio.to_thread(job.events_after, seq, 10.0)
            if not batch:
                if await request.is_disconnected():
                    return
                yield b": keep-alive\n\n"
                continue
            for seq, kind, data in batch:
                yield format_event(seq, kind, data)
                if kind in FINAL_EVENTS:
                    return

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/jobs/{job_id}/frames/{index}")
def frame(job_id: str, index: int, request: Request):
    job = job_or_404(request, job_id)
    path = job.frame_path(index)
    if index not in job.frames_ready or not path.exists():
        raise HTTPException(404, f"frame {index} of job {job_id} is not ready; ready: {sorted(job.frames_ready)}")
    return FileResponse(path, media_type="image/png", filename=frame_filename(index))


@router.get("/jobs/{job_id}/previews/{step}")
def preview(job_id: str, step: int, request: Request):
    job = job_or_404(request, job_id)
    path = job.folder / "previews" / f"step_{step:04d}.png"
    if not path.exists():
        raise HTTPException(404, f"no preview for step {step} of job {job_id} (latest step: {job.step})")
    return FileResponse(path, media_type="image/png")


@router.get("/jobs/{job_id}/manifest")
def manifest(job_id: str, request: Request):
    job = job_or_404(request, job_id)
    path = job.folder / "manifest.json"
    if not path.exists():
        raise HTTPException(404, "the manifest is written when the job starts running")
    return Response(path.read_bytes(), media_type="application/json")


@router.delete("/jobs/{job_id}")
def cancel(job_id: str, request: Request):
    job = job_or_404(request, job_id)
    if not job.finished:
        request.app.state.queue.cancel(job)
    return {"id": job.id, "state": job.state, "cancel_requested": True}
