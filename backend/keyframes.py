"""Beauty renders of chosen frames (SparseCtrl RGB keyframes) with the scene's own engine and settings."""

from __future__ import annotations

from pathlib import Path

import bpy

from .scene_state import preserved


def render_keyframes(scene, frames, out_dir) -> list[str]:
    """Render each scene frame in `frames` as `keyframe_0001.png`, ... (see `iter_keyframes`)."""
    paths: list[str] = []
    for _ in iter_keyframes(scene, frames, out_dir, paths):
        pass
    return paths


def iter_keyframes(scene, frames, out_dir, paths: list):
    """Render each scene frame in `frames` as `keyframe_0001.png`, ... (numbered by position) at the render size.

    Only the output path and file format change for the duration; the engine, samples, colour management and
    compositing are the scene's own. One render per step: yields (done, total, frame); `paths` gets the files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with preserved(scene):
        render = scene.render
        settings = render.image_settings
        if "media_type" in settings.bl_rna.properties:  # Blender 5.0+
            settings.media_type = "IMAGE"
        settings.file_format = "PNG"
        settings.color_mode = "RGBA" if render.film_transparent else "RGB"
        settings.color_depth = "8"
        render.use_file_extension = True
        for index, frame in enumerate(frames):
            path = out / f"keyframe_{index + 1:04d}.png"
            scene.frame_set(frame)
            render.filepath = str(path)
            state = bpy.ops.render.render(write_still=True, scene=scene.name)
            if "FINISHED" not in state or not path.exists():
                raise RuntimeError(f"rendering keyframe {frame} of {scene.name!r} failed ({state})")
            paths.append(str(path))
            yield index + 1, len(frames), frame
