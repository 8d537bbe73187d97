"""The job spec from a snapshot of the scene settings: `snapshot` reads the scene, the rest is plain data.

The spec is the protocol's own `JobSpec`, checked with the server's own `parse_spec` before anything is rendered
or sent, so a spec the server would refuse never leaves Blender.
"""

from __future__ import annotations

import bpy

from . import estimate, pose_capture, stylise_spec
from .protocol import (
    MOTION_LORAS,
    ContextSpec,
    ControlSpec,
    JobSpec,
    PromptKey,
    SparseCtrlSpec,
    SpecError,
    Weighted,
    guide_errors,
    parse_spec,
)

# ControlNet kind (the protocol's vocabulary) -> the prefix of its settings (use_pose, pose_weight ... stay as they
# are so that saved .blend files keep their values).
GUIDE_SETTINGS = {"depth": "depth", "normal": "normal", "openpose": "pose"}


def snapshot(settings, scene) -> dict:
    """Read everything a job needs from the scene on the main thread, once."""
    start, end = settings.frame_range(scene)
    r = scene.render
    width, height = settings.generation_size(scene)  # Marionette's own size, not the render's
    snap = {
        name: getattr(settings, name)
        for name in (
            "prompt",
            "negative_prompt",
            "seed",
            "steps",
            "guidance",
            "scheduler",
            "base",
            "vae",
            "clip_skip",
            "prompt_weighting",
            "motion_module",
            "camera_motion",
            "keyframe_weight",
        )
    }
    snap.update(
        context={
            "length": settings.context_length,
            "overlap": settings.context_overlap,
            "loop": settings.loop,
            "fuse": settings.fuse,
        }
        if settings.use_context
        else None,
        prompt_keys=marker_prompts(scene, start, end) if settings.prompts_from_markers else [],
        frame_start=start,
        frame_end=end,
        fps=round(r.fps / r.fps_base),
        width=width,
        height=height,
        sparsectrl_model=settings.sparsectrl_model,
        loras=[(item.name, item.weight) for item in settings.loras if item.name],
        keyframes=sorted({k.frame for k in settings.keyframes}),
        motion_loras={name: getattr(settings, f"lora_{name}") for name in MOTION_LORAS},
        guides={
            kind: {
                "weight": getattr(settings, f"{p}_weight"),
                "start": getattr(settings, f"{p}_start"),
                "end": getattr(settings, f"{p}_end"),
                "model": getattr(settings, f"{p}_model"),
            }
            for kind, p in GUIDE_SETTINGS.items()
            if getattr(settings, f"use_{p}")
        },
    )
    snap.update(stylise_spec.snapshot(settings))
    if settings.use_pose:
        snap["openpose"] = {
            "characters": [o.name for o in pose_capture.characters(scene)],
            "why_none": pose_capture.describe_missing(scene),
            "hands": settings.pose_hands,
            "own_body_hides": settings.pose_own_body_hides,
            "thickness": settings.pose_thickness,
        }
    return snap


def marker_prompts(scene, start: int, end: int) -> list[tuple[int, str]]:
    """(scene frame, prompt) from the timeline markers in the range: a marker's name, or the text of a Text
    datablock of that name (for prompts longer than a marker name)."""
    keys = []
    for marker in sorted(scene.timeline_markers, key=lambda m: m.frame):
        if start <= marker.frame <= end and marker.name.strip():
            text = bpy.data.texts.get(marker.name)
            keys.append((marker.frame, text.as_string().strip() if text else marker.name.strip()))
    return keys


def problems(snap: dict, has_camera: bool) -> list[str]:
    """What stops a job before anything is rendered or sent, each saying what to do."""
    out = []
    if not has_camera:
        out.append("The scene has no active camera: add one and make it active (Ctrl Numpad 0)")
    if snap["width"] % 8 or snap["height"] % 8:
        out.append(
            f"Output size {snap['width']}x{snap['height']} is not a multiple of 8: set Long side in Output to e.g. 512"
        )
    if snap["frame_end"] < snap["frame_start"]:
        out.append("The frame range is empty: set End at or after Start")
    if not snap["prompt"].strip():
        out.append("The prompt is empty")
    if "openpose" in snap["guides"] and not snap["openpose"]["characters"]:
        out.append(snap["openpose"]["why_none"])
    for frame in snap["keyframes"]:
        if not snap["frame_start"] <= frame <= snap["frame_end"]:
            out.append(f"Keyframe {frame} is outside the frame range {snap['frame_start']}-{snap['frame_end']}")
    frames = snap["frame_end"] - snap["frame_start"] + 1
    return out + stylise_spec.problems(snap, estimate.windows(frames, snap.get("context")) if frames >= 2 else 1)


def build_spec(snap: dict, camera_path: dict | None = None) -> JobSpec:
    """The protocol's JobSpec for the snapshot (frame numbers made 0-based job indices), checked with
    `parse_spec`: raises the protocol's SpecError naming each field to fix. Without the camera path (it is captured
    with the guides) a "From camera" or "Exact camera" spec is checked as it will be once the path is added."""
    start = snap["frame_start"]
    frames = snap["frame_end"] - start + 1
    context = snap.get("context")
    spec = JobSpec(
        prompt=snap["prompt"],
        negative_prompt=snap["negative_prompt"],
        seed=snap["seed"],
        steps=snap["steps"],
        guidance=snap["guidance"],
        width=snap["width"],
        height=snap["height"],
        frames=frames,
        frame_start=start,
        fps=snap["fps"],
        scheduler=snap["scheduler"],
        base=snap["base"],
        vae=snap.get("vae", "").strip(),
        clip_skip=snap["clip_skip"],
        prompt_weighting=snap.get("prompt_weighting", "a1111"),
        motion_module=snap["motion_module"],
        loras=[Weighted(n, w) for n, w in snap["loras"]],
        controlnets=[
            ControlSpec(kind, model=g.get("model", ""), weight=g["weight"], start=g["start"], end=g["end"])
            for kind, g in snap["guides"].items()
        ],
        camera_motion=snap["camera_motion"],
        motion_loras=[
            Weighted(n, w) for n, w in snap["motion_loras"].items() if w > 0 and snap["camera_motion"] == "manual"
        ],
        camera=camera_path,
        context=ContextSpec(**context, motion_scales=_window_scales(snap))
        if context and (frames > context["length"] or context["loop"])
        else None,
        prompts=[PromptKey(f - start, p) for f, p in snap.get("prompt_keys", [])],
        sparsectrl=SparseCtrlSpec(
            model=snap.get("sparsectrl_model") or "rgb",
            keyframes=[f - start for f in snap["keyframes"]],
            weight=snap["keyframe_weight"],
        )
        if snap["keyframes"]
        else None,
        **stylise_spec.spec_fields(snap),
    )
    data = spec.to_dict()
    if camera_path is None and spec.camera_motion in ("auto", "cameractrl"):
        data["camera"] = _still_path(spec)  # the path comes with the guides; everything else is checked now
    checked = parse_spec(data)
    checked.camera = camera_path
    return checked


def _window_scales(snap: dict) -> list[float]:
    try:
        return stylise_spec.window_scales(snap.get("window_motion_scales", ""))
    except ValueError:
        return []  # `problems` refuses it in words; parse_spec never sees it


def _still_path(spec: JobSpec) -> dict:
    """A stand-in camera path of the spec's size and frames (a still camera) to check a spec before capture."""
    frame = {
        "K": [[spec.width, 0, spec.width / 2], [0, spec.width, spec.height / 2], [0, 0, 1]],
        "world_to_camera": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    }
    return {
        "fps": spec.fps,
        "width": spec.width,
        "height": spec.height,
        "frames": [dict(frame, frame=spec.frame_start + i) for i in range(spec.frames)],
    }


def with_guides(spec: JobSpec, camera_path: dict | None, files: dict[str, list[bytes]]) -> JobSpec:
    """The spec with the captured camera path, checked again with it and with the guide files' counts."""
    checked = parse_spec({**spec.to_dict(), "camera": camera_path})
    errors = guide_errors(checked, {name: len(parts) for name, parts in files.items()})
    if errors:
        raise SpecError(errors)
    return checked
