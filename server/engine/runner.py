"""Runs one job: resolves its models, builds the pipeline call from the spec, streams steps and frames."""

from __future__ import annotations

import hashlib
import math
import platform
import time
import traceback
from dataclasses import asdict

import numpy as np
import torch

from .. import __version__
from ..camera import window_input
from ..log import log_exception
from .conditioning import CameraPoses, Control, Keyframes, latent_preview
from .free_init import FreeInit
from .init_video import InitVideo, frames_sha256
from .jobs import Cancelled, Job, is_disk_full, write_png
from .planning import model_identities, plan, references_plan
from .references import Reference
from .schedulers import make_scheduler
from .store import ModelStore
from .text_encoding import prompt_encoder, prompt_record
from .windows import LOW_VRAM_CHUNK, ContextWindows


def _library_versions() -> dict:
    import diffusers
    import peft
    import transformers

    return {
        "marionette": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
    }


def _grid(frames: np.ndarray) -> np.ndarray:
    """Lay (F, h, w, 3) frames out in a near-square grid."""
    n, h, w, _ = frames.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for k, frame in enumerate(frames):
        r, c = divmod(k, cols)
        out[r * h : (r + 1) * h, c * w : (c + 1) * w] = frame
    return out


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def run_job(job: Job, store: ModelStore):
    """Run a job to its end; every outcome ends in exactly one done, error or cancelled event."""
    spec = job.spec
    timings = {"queued_s": round(time.time() - job.created, 3), "started_at": time.time()}
    t0 = time.perf_counter()
    job.manifest = {
        **job.manifest,
        "id": job.id,
        "spec": asdict(spec),
        "seed": spec.seed,
        "status": "running",
        "versions": _library_versions(),
        "device": store.device,
        "dtype": str(store.dtype),
        "motion_norm": store.motion_norm,
    }
    try:
        resolved = plan(spec, store, wait=False)  # file hashes complete in the background
        job.manifest["plan"] = resolved.to_dict(plot=False)
        plot = resolved.plot_png()
        if plot:  # the manifest keeps the schedule; the plot goes beside it
            (job.folder / "camera_motion.png").write_bytes(plot)
        job.write_manifest()
        job.emit(
            "loading",
            models=[spec.base, spec.motion_module]
            + ([spec.vae] if spec.vae else [])
            + [c.model for c in spec.controlnets]
            + list(dict.fromkeys(r.model for r in spec.references)),
        )
        loads_before = len(store.loads)
        with store.lock:  # loading only: /release and /health must not wait for a whole generation
            pipe = store.pipeline(spec.base, spec.motion_module, spec.vae)
            motion_loras = resolved.motion_loras  # the camera's, with camera_motion "auto"
            image_loras = [("lora", m["name"], m["weight"]) for m in resolved.loras]  # with the prompts' tags
            store.set_loras(pipe, image_loras + [("motion_lora", m["name"], m["weight"]) for m in motion_loras])
            controls = [
                Control(store.controlnet(c.model), _to_tensor(job.guides[c.kind]), c.weight, c.start, c.end)
                for c in spec.controlnets
            ]
            keyframes = None
            if spec.sparsectrl:
                keyframes = Keyframes(
                    store.sparsectrl(spec.sparsectrl.model),
                    _to_tensor(job.guides["keyframe"]),
                    spec.sparsectrl.keyframes,
                    spec.sparsectrl.weight,
                )
            camera = None
            if spec.camera_motion == "cameractrl":
                camera = CameraPoses(
                    store.camera_control(spec.cameractrl.model),
                    lambda idx: torch.from_numpy(window_input(spec.camera, idx, spec.height, spec.width)[0]),
                    spec.cameractrl.scale,
                )
            references = _references(job, store)
            pipe.scheduler = make_scheduler(spec.scheduler, pipe.base_scheduler_config)
            init = None
            if spec.init is not None:
                init = InitVideo(_to_tensor(job.guides["init"]), spec.init.strength)
                job.manifest["init"] = {
                    "strength": spec.init.strength,
                    "frames": len(job.guides["init"]),
                    "sha256": frames_sha256(job.folder / "guides", "init", spec.frames),
                    "denoising_steps": resolved.sampling["denoising_steps"],
                }
            job.manifest["loaded_now"] = store.loads[loads_before:]
            timings["load_s"] = round(time.perf_counter() - t0, 3)
            job.check_cancel()

        t1 = time.perf_counter()

        def on_step(i, n, x0):
            step = i + 1
            write_png(job.folder / "previews" / f"step_{step:04d}.png", _grid(latent_preview(x0)))
            job.emit("step", i=step, n=n, preview=f"/jobs/{job.id}/previews/{step}")
            job.check_cancel()

        def on_frame(index, rgb):
            write_png(job.frame_path(index), rgb)
            job.emit("frame", index=index, url=f"/jobs/{job.id}/frames/{index}")
            job.check_cancel()  # a cancel during decoding keeps the frames written so far

        context = None if spec.context is None else ContextWindows(**asdict(spec.context))
        if context is not None and store.low_vram:
            context.chunk = LOW_VRAM_CHUNK
        on_window = None
        schedule = resolved.window_motion_loras()  # the camera was matched on the same windows: one per window
        if context is not None and schedule:
            job.manifest["window_motion_loras"] = schedule
            # LoRA weights cannot change between the windows of one prediction: such clips run the whole UNet
            # per window.
            context.mode = "unet"

            def on_window(w, idx):
                store.set_loras(pipe, image_loras + [("motion_lora", m["name"], m["weight"]) for m in schedule[w]])

        text = prompt_encoder(pipe, store.config, spec.clip_skip, spec.prompt_weighting)
        generator = torch.Generator("cpu").manual_seed(spec.seed)
        pipe.generate(
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            num_frames=spec.frames,
            height=spec.height,
            width=spec.width,
            steps=spec.steps,
            guidance=spec.guidance,
            generator=generator,
            controls=controls,
            keyframes=keyframes,
            context=context,
            prompt_keys=[(k.frame, k.prompt) for k in spec.prompts],
            on_window=on_window,
            on_step=on_step,
            on_frame=on_frame,
            camera=camera,
            references=references,
            init=init,
            free_init=None if spec.free_init is None else FreeInit(**asdict(spec.free_init)),
            motion_scale=spec.motion_scale,
            text=text,
        )
        job.manifest["prompt_encoding"] = prompt_record(spec, text)
        timings["generate_s"] = round(time.perf_counter() - t1, 3)
        for kind, identity in model_identities(spec, store).items():
            job.manifest["plan"][kind].update(identity)
            job.manifest["plan"][kind].pop("sha256_pending", None)
        for done, waited in zip(job.manifest["plan"]["references"], references_plan(spec, store)):
            done.update(ip_adapter=waited["ip_adapter"], image_encoder=waited["image_encoder"])
        job.manifest.update(status="done", frames=[f.name for f in sorted(job.frames_dir.glob("*.png"))])
        timings["total_s"] = round(time.perf_counter() - t0, 3)
        timings["finished_at"] = time.time()
        job.manifest["timings"] = timings
        job.write_manifest()
        job.emit(
            "done",
            frames=len(job.frames_ready),
            manifest=f"/jobs/{job.id}/manifest",
            loaded=job.manifest.get("loaded_now", []),
            motion_loras=resolved.motion_loras,
        )
    except Cancelled:
        _finish(job, "cancelled", "cancelled by the client", timings)
        job.emit("cancelled", message="cancelled by the client", frames=len(job.frames_ready))
    except Exception as exc:  # a failing job must never take the worker down
        message = describe_failure(exc, job.folder)
        error_id = log_exception(f"job {job.id}", exc)
        job.manifest["error_id"] = error_id
        _finish(job, "error", message, timings, traceback.format_exc())
        job.emit("error", message=message, frames=len(job.frames_ready))


def _references(job: Job, store: ModelStore) -> list[Reference]:
    """The spec's image references with their models and images; the manifest's plan gets each image's sha256."""
    out = []
    for i, r in enumerate(job.spec.references):
        adapter, encoder = store.ip_adapter(r.model)
        out.append(Reference(adapter, encoder, job.guides["reference"][i], r.weight, r.start, r.end, r.first, r.last))
        data = (job.folder / "guides" / f"reference_{i + 1:04d}.png").read_bytes()
        job.manifest["plan"]["references"][i]["image_sha256"] = hashlib.sha256(data).hexdigest()
    return out


def describe_failure(exc: BaseException, folder=None) -> str:
    """A message that names the cause and what to do about it."""
    if is_disk_full(exc):
        return (
            f"the disk of the server's data folder is full ({exc.strerror}); free space there or start the "
            f"server with another --data folder. The frames written so far are kept"
        )
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return (
            "out of GPU memory: lower the size or frame count, use fewer ControlNets, or release other models "
            f"(POST /release). Detail: {exc}"
        )
    return f"{type(exc).__name__}: {exc}"


def _finish(job: Job, status: str, message: str, timings: dict, trace: str | None = None):
    job.manifest.update(
        status=status, message=message, timings=timings, frames=[f.name for f in sorted(job.frames_dir.glob("*.png"))]
    )
    if trace:
        job.manifest["traceback"] = trace
    try:
        job.write_manifest()
    except OSError:
        pass
