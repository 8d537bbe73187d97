"""Checks shared by the routes: JSON bodies, known jobs, and that a spec's models exist, are readable and fit."""

from __future__ import annotations

from fastapi import HTTPException, Request

from ..loaders import CheckpointError, hub, motion_adapter_info
from ..loaders.vae import misfit, vae_config
from ..protocol import SpecError
from ..protocol.inputs import decode_json
from .family_checks import family_problems
from .model_names import resolve_models
from .prompt_checks import check_prompts


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


def check_models(models, spec):
    """Every model name of the spec exists and its file is readable, a separate VAE fits the base, and the clip
    fits the motion module.
    Raises UnknownModels (every unknown name: 422), HTTPException 409 (files missing), CheckpointError (a broken
    file: 409) or SpecError."""
    named = resolve_models(models, spec)
    foreign = family_problems(models, spec, named)  # SDXL, Flux, ... files: refused before anything loads
    if foreign:
        raise SpecError(foreign)
    module = named["motion_module"]
    entries = list(named.values())
    # each IP-Adapter brings its image encoder (the config names only encoders it has)
    entries += [models.get("image_encoder", e.image_encoder) for e in entries if e.kind == "ip_adapter"]
    entries = list(dict.fromkeys(entries))
    check_prompts(models, spec)
    for entry in entries:
        require_files(entry)
    if spec.vae:
        check_vae_fits(named["base"], named["vae"])
    try:
        max_frames = motion_adapter_info(module.source, module.config)["max_frames"]
    except CheckpointError as e:
        e.kind, e.name = "motion_module", spec.motion_module
        raise
    if spec.context is not None and spec.context.length > max_frames:
        raise SpecError(
            [
                (
                    "context.length",
                    f"windows of {spec.context.length} frames are more than the motion "
                    f"module {spec.motion_module!r} takes ({max_frames}); 16 is what "
                    f"it was trained on",
                )
            ]
        )
    if spec.context is None and spec.frames > max_frames:
        raise SpecError(
            [
                (
                    "frames",
                    f"{spec.frames} frames is more than the motion module "
                    f"{spec.motion_module!r} takes ({max_frames}) in one pass; shorten the clip "
                    f'or send "context" windows (e.g. length 16, overlap 4)',
                )
            ]
        )


def check_vae_fits(base, vae):
    """A 422 on `vae` when the chosen VAE's latent space is not the base's, from the two configs alone (no weights
    are read: /plan stays instant), before anything loads."""
    configs = []
    for entry in (vae, base):
        try:
            configs.append(vae_config(entry.source, entry.config, entry.weight_name))
        except CheckpointError as e:
            e.kind, e.name = entry.kind, entry.name
            raise
    problem = misfit(*configs)
    if problem:
        raise SpecError([("vae", f"{vae.name!r}: {problem}")])
