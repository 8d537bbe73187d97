"""HTTP routes. `create_app(Settings(...))` builds the whole server; tests call it with their own settings."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from PIL import Image, UnidentifiedImageError

from . import __version__
from .jobs import JobQueue
from .models import KINDS, ModelConfig, ModelStore, UnknownModel
from .protocol import (FINAL_EVENTS, FORM_DEPTH, FORM_KEYFRAME, FORM_NORMAL, FORM_POSE, FORM_SPEC, LIMITS,
                       SpecError, format_event, frame_filename, guide_errors, parse_spec)
from .runner import motion_loras_for, plan, run_job

GUIDE_FIELDS = (FORM_DEPTH, FORM_NORMAL, FORM_POSE, FORM_KEYFRAME)


@dataclass
class Settings:
    models: ModelConfig
    data_dir: Path
    token: str | None = None
    device: str | None = None
    dtype: str | None = None
    max_upload_mb: int = 512
    extra: dict = field(default_factory=dict)


class BodyLimit:
    """Refuse request bodies over the limit with 413, whether or not they announce their length."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit


    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _too_large(self.limit, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _too_large(self.limit, send)


class _TooLarge(Exception):
    pass


async def _too_large(limit, send):
    body = json.dumps({"detail": f"upload larger than the server's limit of {limit // 2**20} MiB; "
                                 f"send fewer or smaller guides, or start the server with a larger --max-upload-mb"}
                      ).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _spec_error(errors) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [{"field": f, "message": m} for f, m in errors]})


def create_app(settings: Settings) -> FastAPI:
    store = ModelStore(settings.models, settings.device, settings.dtype)
    queue = JobQueue(settings.data_dir, lambda job: run_job(job, store))

    def auth(request: Request):
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {settings.token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer <token>)")

    app = FastAPI(title="Marionette server", version=__version__, dependencies=[Depends(auth)])
    app.add_middleware(BodyLimit, limit=settings.max_upload_mb * 2**20)
    app.state.store, app.state.queue, app.state.settings = store, queue, settings
    app.router.on_shutdown.append(queue.stop)

    def job_or_404(job_id: str):
        job = queue.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job

    def check_models(spec):
        """Every model name of the spec exists, and the clip fits the motion module. Raises 404 / SpecError."""
        from .checkpoints import motion_adapter_info

        try:
            settings.models.get("base", spec.base)
            module = settings.models.get("motion_module", spec.motion_module)
            for c in spec.controlnets:
                settings.models.get("controlnet", c.model)
            for m in spec.loras:
                settings.models.get("lora", m.name)
            for m in motion_loras_for(spec)[0]:  # with camera_motion "auto": the ones the camera matched
                settings.models.get("motion_lora", m["name"])
            if spec.sparsectrl:
                settings.models.get("sparsectrl", spec.sparsectrl.model)
        except UnknownModel as e:
            raise HTTPException(404, {"message": str(e), "kind": e.kind, "name": e.name, "known": e.known})
        max_frames = motion_adapter_info(module.source, module.config)["max_frames"]
        if spec.context is not None and spec.context.length > max_frames:
            raise SpecError([("context.length", f"windows of {spec.context.length} frames are more than the motion "
                                                f"module {spec.motion_module!r} takes ({max_frames}); 16 is what "
                                                f"it was trained on")])
        if spec.context is None and spec.frames > max_frames:
            raise SpecError([("frames", f"{spec.frames} frames is more than the motion module "
                                        f"{spec.motion_module!r} takes ({max_frames}) in one pass; shorten the clip "
                                        f"or send \"context\" windows (e.g. length 16, overlap 4)")])

    @app.exception_handler(SpecError)
    async def spec_error(_request, exc: SpecError):
        return _spec_error(exc.errors)

    @app.get("/health")
    def health():
        return {"status": "ok", "version": __version__, "device": store.device, "loaded": store.loaded(),
                "busy": not queue.idle()}

    @app.get("/models")
    def models():
        loaded = set(store.loaded())
        return {kind: [{"name": n, "source": settings.models.get(kind, n).source,
                        "loaded": f"{kind}:{n}" in loaded} for n in settings.models.names(kind)]
                for kind in KINDS}

    @app.post("/plan")
    async def plan_route(request: Request):
        try:
            data = await request.json()
        except ValueError:
            raise SpecError([("spec", "body must be JSON")])
        spec = parse_spec(data)
        await asyncio.to_thread(check_models, spec)  # may read a checkpoint's keys: off the event loop
        return plan(spec, store)

    @app.post("/jobs", status_code=202)
    async def submit(request: Request):
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            try:
                data, parts = await request.json(), {}
            except ValueError:
                raise SpecError([("spec", "body must be JSON")])
        elif content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            form = await request.form(max_files=4096, max_fields=64, max_part_size=32 * 2**20)
            raw = form.get(FORM_SPEC)
            if raw is None:
                raise SpecError([(FORM_SPEC, "the multipart form needs a 'spec' field holding the JSON spec")])
            try:
                data = json.loads(raw if isinstance(raw, str) else await raw.read())
            except ValueError as e:
                raise SpecError([(FORM_SPEC, f"not valid JSON: {e}")])
            parts = {name: [await f.read() for f in form.getlist(name)] for name in GUIDE_FIELDS}
        else:
            raise HTTPException(415, "send multipart/form-data (spec + guides) or application/json (spec only)")
        spec = parse_spec(data)
        await asyncio.to_thread(check_models, spec)  # may read a checkpoint's keys: off the event loop
        errors = guide_errors(spec, {k: len(v) for k, v in parts.items()})
        if errors:
            raise SpecError(errors)
        guides = await asyncio.to_thread(_decode_guides, spec, parts)
        job = queue.new_job(spec)
        job.guides = guides
        await asyncio.to_thread(_save_guides, job.folder / "guides", guides, parts)
        queue.submit(job)
        return {"id": job.id}

    @app.get("/jobs/{job_id}")
    def status(job_id: str):
        job = job_or_404(job_id)
        return {"id": job.id, "state": job.state, "position": queue.position(job), "step": job.step,
                "steps": job.steps, "frames": job.spec.frames, "frames_ready": sorted(job.frames_ready),
                "error": job.error}

    @app.get("/jobs/{job_id}/events")
    async def events(job_id: str, request: Request):
        job = job_or_404(job_id)
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

    @app.get("/jobs/{job_id}/frames/{index}")
    def frame(job_id: str, index: int):
        job = job_or_404(job_id)
        path = job.frame_path(index)
        if index not in job.frames_ready or not path.exists():
            raise HTTPException(404, f"frame {index} of job {job_id} is not ready; ready: {sorted(job.frames_ready)}")
        return FileResponse(path, media_type="image/png", filename=frame_filename(index))

    @app.get("/jobs/{job_id}/previews/{step}")
    def preview(job_id: str, step: int):
        job = job_or_404(job_id)
        path = job.folder / "previews" / f"step_{step:04d}.png"
        if not path.exists():
            raise HTTPException(404, f"no preview for step {step} of job {job_id} (latest step: {job.step})")
        return FileResponse(path, media_type="image/png")

    @app.get("/jobs/{job_id}/manifest")
    def manifest(job_id: str):
        job = job_or_404(job_id)
        path = job.folder / "manifest.json"
        if not path.exists():
            raise HTTPException(404, "the manifest is written when the job starts running")
        return Response(path.read_bytes(), media_type="application/json")

    @app.delete("/jobs/{job_id}")
    def cancel(job_id: str):
        job = job_or_404(job_id)
        if not job.finished:
            queue.cancel(job)
        return {"id": job.id, "state": job.state, "cancel_requested": True}

    @app.post("/pose/draw")
    async def pose_draw(request: Request):
        """One OpenPose frame {"width", "height", "people"} drawn as a job's pose guide is: a PNG."""
        try:
            data = await request.json()
        except ValueError:
            raise SpecError([("pose", "body must be JSON: {\"width\", \"height\", \"people\": [...]}")])
        if not isinstance(data, dict):
            raise SpecError([("pose", "body must be an object: {\"width\", \"height\", \"people\": [...]}")])
        lo, hi = LIMITS["size"]
        for name in ("width", "height"):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise SpecError([(name, f"must be an integer between {lo} and {hi}, got {value!r}")])
        return Response(await asyncio.to_thread(_draw_pose_png, data), media_type="image/png")

    @app.post("/release")
    def release():
        if not queue.idle():
            raise HTTPException(409, "a job is running or queued; cancel it or wait, then release")
        store.release()
        return {"released": True, "loaded": store.loaded()}

    return app


def _decode_png(data: bytes, where: str, width: int, height: int) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise SpecError([(where, f"cannot be decoded as an image ({e.__class__.__name__}); send a PNG")])
    if image.size != (width, height):
        raise SpecError([(where, f"is {image.size[0]}x{image.size[1]}, the job is {width}x{height}")])
    return np.asarray(image.convert("RGB"))


def _decode_guides(spec, parts: dict[str, list[bytes]]) -> dict[str, list[np.ndarray]]:
    """Decode and check every uploaded guide; the openpose guide is drawn from its keypoints here."""
    guides = {}
    for name in (FORM_DEPTH, FORM_NORMAL):
        if parts.get(name):
            guides[name] = [_decode_png(d, f"{name}[{i}]", spec.width, spec.height) for i, d in enumerate(parts[name])]
    if parts.get(FORM_POSE):
        from . import pose  # controlnet-aux is slow to import: only when a job has a pose guide

        try:
            people = pose.parse_frames(json.loads(parts[FORM_POSE][0]), spec.frames, spec.width, spec.height)
        except ValueError as e:
            raise SpecError([(FORM_POSE, str(e))])
        guides["openpose"] = [pose.draw(p, spec.width, spec.height) for p in people]
    if parts.get(FORM_KEYFRAME):
        guides["keyframe"] = [_decode_png(d, f"keyframe[{i}]", spec.width, spec.height)
                              for i, d in enumerate(parts[FORM_KEYFRAME])]
    return guides


def _draw_pose_png(data: dict) -> bytes:
    from . import pose

    width, height = data["width"], data["height"]
    try:
        people = pose.parse_frames([{"people": data.get("people")}], 1, width, height)[0]
    except ValueError as e:
        raise SpecError([("pose", str(e))])
    buf = io.BytesIO()
    Image.fromarray(pose.draw(people, width, height)).save(buf, format="PNG")
    return buf.getvalue()


def _save_guides(folder: Path, guides: dict[str, list[np.ndarray]], parts: dict[str, list[bytes]]):
    """Keep the guides beside the frames so any result can be re-run from its folder."""
    for name, images in guides.items():
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{name}_{i + 1:04d}.png")
    if parts.get(FORM_POSE):
        (folder / "pose.json").write_bytes(parts[FORM_POSE][0])
