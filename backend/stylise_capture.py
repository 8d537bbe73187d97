"""The capture's styling renders, one render per step like the guides: the start frames of video-to-video (a
beauty render of every frame) and the image references (files read, or the character rendered alone)."""

from __future__ import annotations

from pathlib import Path

import bpy

from . import beauty, reference_render
from .protocol import FORM_INIT, FORM_REFERENCE
from .subject import subject_objects


def step_count(snap: dict, frames: int) -> int:
    """How many steps `iter_styling` takes for a clip of `frames` frames (one per render or reference)."""
    return len(snap.get("references", [])) + (frames if snap.get("init") else 0)


def iter_styling(scene, snap: dict, frames: list[int], folder: Path, files: dict):
    """Yields ("init" | "reference", scene frame) after each render or reference file read; fills `files` with
    the "init" and "reference" form parts (in frame order and in the references' order)."""
    if snap.get("init"):
        written: list = []
        engine = beauty.engine_id(scene, snap["init"]["engine"])
        for _, _, frame in beauty.iter_renders(scene, frames, folder, written, "init", engine=engine, rgba=False):
            yield "init", frame
        files[FORM_INIT] = [Path(p).read_bytes() for p in written]
    parts = []
    for i, ref in enumerate(snap.get("references", [])):
        if ref["source"] == "FILE":
            parts.append(reference_render.image_file_png(ref["path"]))
            yield "reference", ref["frame"]
            continue
        try:
            objects = subject_objects(bpy.data.objects.get(ref["subject"]), bpy.data.collections.get(ref["collection"]))
        except ValueError as e:
            raise ValueError(f"reference {i + 1}: {e}") from None
        path = folder / f"reference_{i + 1:04d}.png"
        camera = bpy.data.objects.get(ref["camera"]) if ref["camera"] else None
        parts.append(reference_render.render_reference(scene, objects, ref["frame"], camera, path).read_bytes())
        yield "reference", ref["frame"]
    if parts:
        files[FORM_REFERENCE] = parts
