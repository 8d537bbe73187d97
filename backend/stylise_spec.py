"""The styling settings of a job (image references, start from the render, FreeInit, motion scale): read from the
scene on the main thread (`snapshot`), checked in the artist's words (`problems`), turned into the protocol's
spec fields (`spec_fields`). Frame numbers are scene frames until `spec_fields` makes them 0-based job indices."""

from __future__ import annotations

from pathlib import Path

import bpy

from . import catalog
from .protocol import FreeInitSpec, InitSpec, ReferenceSpec


def _reference(item) -> dict:
    return {
        "source": item.source,
        "path": bpy.path.abspath(item.image_path) if item.image_path else "",
        "subject": item.subject.name if item.subject else "",
        "collection": item.subject_collection.name if item.subject_collection else "",
        "frame": item.frame,
        "camera": item.camera.name if item.camera else "",
        "model": item.model or (catalog.names("ip_adapter") or ["ip_adapter"])[0],
        "weight": item.weight,
        "start": item.start,
        "end": item.end,
        "range": None if item.whole_clip else (item.first, item.last),
    }


def snapshot(settings) -> dict:
    return {
        "references": [_reference(item) for item in settings.references],
        "init": {"strength": settings.init_strength, "engine": settings.init_engine} if settings.use_init else None,
        "free_init_iterations": settings.free_init_iterations,
        "motion_scale": settings.motion_scale,
        "window_motion_scales": settings.window_motion_scales,
    }


def window_scales(text: str) -> list[float]:
    """The per-window motion scales typed as "1, 1.4, 0.8"; ValueError names an entry that is no number."""
    out = []
    for part in text.replace(";", ",").split(","):
        if part.strip():
            try:
                out.append(float(part))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not a number") from None
    return out


def problems(snap: dict, windows: int) -> list[str]:
    """What stops the styling settings from being used, each saying what to do. `windows`: how many context
    windows the clip runs in (1: none)."""
    out = []
    try:
        scales = window_scales(snap.get("window_motion_scales", ""))
    except ValueError as e:
        scales = []
        out.append(f"Motion scales per window: {e}; give numbers separated by commas")
    if scales and windows < 2:
        out.append(
            "Motion scales per window need context windows, and the clip runs in one: clear them (Motion scale "
            "applies to the whole clip)"
        )
    start, end = snap["frame_start"], snap["frame_end"]
    for i, ref in enumerate(snap.get("references", []), 1):
        if ref["source"] == "FILE":
            if not ref["path"]:
                out.append(f"Reference {i}: choose an image file, or set its source to Render")
            elif not Path(ref["path"]).is_file():
                out.append(f"Reference {i}: the image {ref['path']} does not exist; choose another file")
        elif not (ref["subject"] or ref["collection"]):
            out.append(f"Reference {i}: choose the character (an object or a collection) to render alone")
        if ref["range"] is not None:
            first, last = ref["range"]
            if first > last:
                out.append(f"Reference {i}: First ({first}) is after Last ({last}); swap them")
            elif first < start or last > end:
                out.append(f"Reference {i}: frames {first}-{last} reach outside the frame range {start}-{end}")
    return out


def spec_fields(snap: dict) -> dict:
    """The JobSpec fields of the styling settings."""
    start = snap["frame_start"]
    references = []
    for ref in snap.get("references", []):
        first, last = (0, None) if ref["range"] is None else (ref["range"][0] - start, ref["range"][1] - start)
        references.append(ReferenceSpec(ref["model"], ref["weight"], ref["start"], ref["end"], first, last))
    iterations, init = snap.get("free_init_iterations", 1), snap.get("init")
    return {
        "references": references,
        "init": InitSpec(strength=init["strength"]) if init else None,
        "free_init": FreeInitSpec(iterations=iterations) if iterations > 1 else None,
        "motion_scale": snap.get("motion_scale", 1.0),
    }
