"""Every model a spec names, by the spec field that names it, and the words for names the server lacks: one 422 item
per unknown name, each naming the configured names of its kind."""

from __future__ import annotations

from ..engine.planning import motion_lora_names
from ..engine.prompt_tags import tag_loras
from ..loaders import UnknownModel
from ..protocol import CAMERA_DIRECTIONS, CONTROL_KINDS
from .family_checks import usable


def named_models(spec):
    """(spec field path, model kind, name) of every model the spec names: the one table of model fields."""
    yield "base", "base", spec.base
    yield "motion_module", "motion_module", spec.motion_module
    yield from ((f"controlnets[{i}].model", "controlnet", c.model) for i, c in enumerate(spec.controlnets))
    yield from ((f"loras[{i}].name", "lora", m.name) for i, m in enumerate(spec.loras))
    yield from ((field, "lora", lora.name) for field, lora in tag_loras(spec)[0])  # <lora:NAME:W> in the prompts
    yield from ((f"motion_loras[{i}].name", "motion_lora", m.name) for i, m in enumerate(spec.motion_loras))
    yield from (("camera_motion", "motion_lora", name) for name in sorted(camera_motion_loras(spec)))
    if spec.sparsectrl:
        yield "sparsectrl.model", "sparsectrl", spec.sparsectrl.model
    if spec.cameractrl:
        yield "cameractrl.model", "camera_control", spec.cameractrl.model
    yield from ((f"references[{i}].model", "ip_adapter", r.model) for i, r in enumerate(spec.references))
    if spec.vae:
        yield "vae", "vae", spec.vae


def camera_motion_loras(spec) -> set[str]:
    """The motion LoRAs camera_motion "auto" chose from the camera path beyond those the spec lists itself."""
    return motion_lora_names(spec) - {m.name for m in spec.motion_loras}


def _message(field: str, e: UnknownModel, tags: dict) -> str:
    known = f"configured: {', '.join(e.known)}" if e.known else f"the server's model config has no {e.kind} at all"
    if (field, e.name) in tags:
        return f"{tags[field, e.name]} names the LoRA {e.name!r}, which the server lacks; {known}"
    if field == "camera_motion":
        what = CAMERA_DIRECTIONS.get(e.name, (None, None, "the camera's motion"))[2]
        return (
            f'camera_motion "auto" matched the camera ({what}) to the motion LoRA {e.name!r}, which the server '
            f'lacks ({known}); add it to the server\'s model config or send camera_motion "manual"'
        )
    if e.kind == "controlnet" and e.name in CONTROL_KINDS:
        return f"no controlnet named {e.name!r} (an empty model means the one named as its kind); {known}"
    return f"unknown {e.kind} {e.name!r}; {known}"


def resolve_models(models, spec) -> tuple[list[tuple[str, object]], list[tuple[str, str, dict]]]:
    """([(field path, model entry)] for every configured name the spec names, [(field, message, detail)] for every
    name the config lacks). The detail (kind, name, configured names `known`) lets clients say what to pick."""
    entries, unknown = [], []
    tags = {(field, lora.name): lora.tag for field, lora in tag_loras(spec)[0]}  # to name a prompt's <lora:...>
    for field, kind, name in named_models(spec):
        try:
            entries.append((field, models.get(kind, name)))
        except UnknownModel as e:
            e.known = usable(models, kind, e.known)  # an SDXL, Flux, ... model is no choice to offer
            unknown.append((field, _message(field, e, tags), {"kind": e.kind, "name": e.name, "known": e.known}))
    return entries, unknown
