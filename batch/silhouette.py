"""The character's silhouette from the scene camera: the alpha channel of every sprite frame.

Cycles (the engine the guides already use, so no GPU or display is needed) renders only the character's objects
over a transparent film; everything else is hidden from the render for the duration and restored afterwards.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path

import bpy
import numpy as np

from ..backend.png import read_png
from ..backend.subject import alone, subject_objects


def character_objects(armature=None, collection: str = "") -> list:
    """The objects whose silhouette is the character: those of a named collection, or the armature's hierarchy
    (children at any depth and meshes deformed by it)."""
    found = None
    if collection:
        found = bpy.data.collections.get(collection)
        if found is None:
            names = ", ".join(c.name for c in bpy.data.collections) or "none"
            raise ValueError(f"no collection {collection!r}; collections in the file: {names}")
    try:
        return subject_objects(armature, found)
    except ValueError as e:
        raise ValueError(f"{e} to cut the sprites' alpha from") from None


@contextmanager
def _only(scene, folder: Path, samples: int):
    r, cycles = scene.render, scene.cycles
    saved = [
        (r, "engine"),
        (r, "film_transparent"),
        (r, "filepath"),
        (r, "use_compositing"),
        (r, "use_sequencer"),
        (r.image_settings, "file_format"),
        (r.image_settings, "color_mode"),
        (r.image_settings, "color_depth"),
        (cycles, "samples"),
        (cycles, "use_adaptive_sampling"),
        (cycles, "use_denoising"),
        (cycles, "max_bounces"),
        (cycles, "device"),
        (cycles, "pixel_filter_type"),
        (cycles, "filter_width"),
    ]
    values = [getattr(owner, name) for owner, name in saved]
    try:
        r.engine = "CYCLES"
        r.film_transparent, r.use_compositing, r.use_sequencer = True, False, False
        r.filepath = str(folder / "mask_")
        r.image_settings.file_format, r.image_settings.color_mode = "PNG", "RGBA"
        r.image_settings.color_depth = "8"
        cycles.samples, cycles.use_adaptive_sampling, cycles.use_denoising = samples, False, False
        cycles.max_bounces, cycles.device = 0, "CPU"
        # alpha = the share of each pixel's square the character covers (box filter); one sample: the pixel centre
        cycles.pixel_filter_type, cycles.filter_width = "BOX", (1.0 if samples > 1 else 0.01)
        yield
    finally:
        for (owner, name), value in zip(saved, values):
            setattr(owner, name, value)


def render_alpha(scene, objects, frames: list[int], samples: int = 16) -> list[np.ndarray]:
    """Per frame, the character's coverage of each pixel from the scene camera as H×W uint8 alpha (255 = fully
    covered): `samples` per pixel spread over the pixel, or with 1 sample a hard mask from the pixel centres."""
    start, end, current = scene.frame_start, scene.frame_end, scene.frame_current
    with tempfile.TemporaryDirectory(prefix="marionette-alpha-") as tmp:
        folder = Path(tmp)
        try:
            with alone(scene, objects), _only(scene, folder, samples):
                scene.frame_start, scene.frame_end = frames[0], frames[-1]
                bpy.ops.render.render(animation=True)
        finally:
            scene.frame_start, scene.frame_end = start, end
            scene.frame_set(current)
        return [read_png(folder / f"mask_{f:04d}.png")[:, :, 3].copy() for f in frames]
