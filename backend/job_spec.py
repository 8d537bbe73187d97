"""The job spec from a snapshot of the scene settings: `snapshot` reads the scene, the rest is plain data."""

from __future__ import annotations

import bpy

from . import pose_capture

try:
    from ..server.protocol import MOTION_LORAS, PROTOCOL_VERSION
except ImportError:
    from server.protocol import MOTION_LORAS, PROTOCOL_VERSION

GUIDE_KINDS = {"depth": "depth", "normal": "normal", "pose": "openpose"}


def snapshot(settings, scene) -> dict:
    """Read everything a job needs from the scene on the main thread, once."""
    start, end = settings.frame_range(scene)
    r = scene.render
    snap = {name: getattr(settings, name) for name in (
        "prompt", "negative_prompt", "seed", "steps", "guidance", "scheduler", "base", "motion_module",
        "camera_motion", "keyframe_weight")}
    snap.update(
        context={"length": settings.context_length, "overlap": settings.context_overlap, "loop": settings.loop,
                 "fuse": settings.fuse} if settings.use_context else None,
        prompt_keys=marker_prompts(scene, start, end) if settings.prompts_from_markers else [],
        frame_start=start, frame_end=end, fps=round(r.fps / r.fps_base),
        width=r.resolution_x * r.resolution_percentage // 100,
        height=r.resolution_y * r.resolution_percentage // 100,
        loras=[(item.name, item.weight) for item in settings.loras if item.name],
        keyframes=sorted({k.frame for k in settings.keyframes}),
        motion_loras={name: getattr(settings, f"lora_{name}") for name in MOTION_LORAS},
        guides={kind: {"weight": getattr(settings, f"{kind}_weight"), "start": getattr(settings, f"{kind}_start"),
                       "end": getattr(settings, f"{kind}_end")}
                for kind in GUIDE_KINDS if getattr(settings, f"use_{kind}")},
    )
    if settings.use_pose:
        snap["pose"] = {"characters": [o.name for o in pose_capture.characters(scene)],
                        "why_none": pose_capture.describe_missing(scene), "hands": settings.pose_hands,
                        "own_body_hides": settings.pose_own_body_hides, "thickness": settings.pose_thickness}
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
        out.append(f"Output size {snap['width']}x{snap['height']} is not a multiple of 8: set the render "
                   f"resolution (and %) to e.g. 512x512")
    if snap["frame_end"] < snap["frame_start"]:
        out.append("The frame range is empty: set End at or after Start")
    if not snap["prompt"].strip():
        out.append("The prompt is empty")
    if "pose" in snap["guides"] and not snap["pose"]["characters"]:
        out.append(snap["pose"]["why_none"])
    for frame in snap["keyframes"]:
        if not snap["frame_start"] <= frame <= snap["frame_end"]:
            out.append(f"Keyframe {frame} is outside the frame range {snap['frame_start']}-{snap['frame_end']}")
    return out


def build_spec(snap: dict, camera_path: dict | None = None) -> dict:
    frames = snap["frame_end"] - snap["frame_start"] + 1
    spec = {
        "version": PROTOCOL_VERSION, "prompt": snap["prompt"], "negative_prompt": snap["negative_prompt"],
        "seed": snap["seed"], "steps": snap["steps"], "guidance": snap["guidance"], "width": snap["width"],
        "height": snap["height"], "frames": frames, "frame_start": snap["frame_start"], "fps": snap["fps"],
        "scheduler": snap["scheduler"], "base": snap["base"], "motion_module": snap["motion_module"],
        "loras": [{"name": n, "weight": w} for n, w in snap["loras"]],
        "controlnets": [{"kind": GUIDE_KINDS[k], "weight": g["weight"], "start": g["start"], "end": g["end"]}
                        for k, g in snap["guides"].items()],
        "camera_motion": snap["camera_motion"].lower(),
        "motion_loras": [{"name": n, "weight": w} for n, w in snap["motion_loras"].items()
                         if w > 0 and snap["camera_motion"] == "MANUAL"],
    }
    if camera_path is not None:
        spec["camera"] = camera_path
    context = snap.get("context")
    if context and (frames > context["length"] or context["loop"]):
        spec["context"] = context
    if snap.get("prompt_keys"):
        spec["prompts"] = [{"frame": f - snap["frame_start"], "prompt": p} for f, p in snap["prompt_keys"]]
    if snap["keyframes"]:
        spec["sparsectrl"] = {"keyframes": [f - snap["frame_start"] for f in snap["keyframes"]],
                              "weight": snap["keyframe_weight"]}
    return spec
