"""What a job spec resolves to before anything runs: models, ControlNets, LoRA weights, the camera match."""

from __future__ import annotations

import base64

from ..camera import match, plot_png, with_overrides
from ..loaders import file_identity, motion_adapter_info
from ..protocol import JobSpec
from .store import ModelStore


def plan(spec: JobSpec, store: ModelStore) -> dict:
    """What a spec resolves to, without generating: models, ControlNets, LoRA weights and notes."""
    config = store.config
    module = config.get("motion_module", spec.motion_module)
    info = motion_adapter_info(module.source, module.config)
    notes = []
    motion_loras, camera = motion_loras_for(spec)
    if (motion_loras or spec.camera_motion == "auto") and info["version"] != "v2":
        notes.append(f"motion LoRAs act as intended only on the v2 motion module; {spec.motion_module!r} is "
                     f"{info['version']}: expect little effect")
    if camera is not None:
        notes += camera["notes"]
    if spec.sparsectrl and info["version"] not in ("v3", "unknown"):
        notes.append(f"SparseCtrl was trained with the v3 motion module; {spec.motion_module!r} is {info['version']}")
    return {
        "base": file_identity(config.get("base", spec.base)),
        "motion_module": {**file_identity(module), **info},
        "controlnets": [{"kind": c.kind, "model": c.model, "weight": c.weight, "start": c.start, "end": c.end,
                         "source": config.get("controlnet", c.model).source} for c in spec.controlnets],
        "sparsectrl": None if spec.sparsectrl is None else {
            "model": spec.sparsectrl.model, "keyframes": spec.sparsectrl.keyframes,
            "weight": spec.sparsectrl.weight, "source": config.get("sparsectrl", spec.sparsectrl.model).source},
        "motion_loras": motion_loras,
        "loras": [{"name": m.name, "weight": m.weight} for m in spec.loras],
        "camera_motion": spec.camera_motion,
        # with a camera path: what it matched (before manual overrides), the schedule, the per-pair components and
        # a base64 PNG plot of both (README "Camera matching")
        "matched_motion_loras": None if camera is None else camera["motion_loras"],
        "windows": None if camera is None else camera["windows"],
        "components": None if camera is None else camera["components"],
        "camera_matching": None if camera is None else {k: camera[k] for k in ("rates", "settings")},
        "plot_png": None if camera is None else base64.b64encode(
            plot_png(camera["components"], camera["windows"])).decode(),
        "scheduler": spec.scheduler,
        "notes": notes,
    }


def motion_loras_for(spec: JobSpec) -> tuple[list[dict], dict | None]:
    """The motion LoRA weights a job applies, and the camera match when the spec has a camera path.

    "auto": the camera's clip weights, manual entries overriding per name (also in every window); "manual": the
    spec's own weights (the camera match is still returned, for display)."""
    manual = [{"name": m.name, "weight": m.weight} for m in spec.motion_loras]
    if spec.camera is None:
        return manual, None
    camera = match(spec.camera)
    if spec.camera_motion != "auto":
        return manual, camera
    for w in camera["windows"]:
        w["motion_loras"] = with_overrides(w["motion_loras"], spec.motion_loras)
    return with_overrides(camera["motion_loras"], spec.motion_loras), camera


def window_schedule(camera_windows: list[dict], windows: list[list[int]]) -> list[list[dict]]:
    """For each context window, the motion LoRAs of the camera schedule window sharing the most frames with it."""
    out = []
    for idx in windows:
        frames = set(idx)
        best = max(camera_windows, key=lambda cw: len(frames & set(range(cw["start"], cw["end"]))))
        out.append(best["motion_loras"])
    return out
