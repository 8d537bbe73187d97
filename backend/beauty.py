"""Beauty renders of scene frames: SparseCtrl keyframes and the video-to-video guide (every frame of the clip).

Rendered with the scene's own engine and settings, or with Workbench or EEVEE when the artist picks one; only the
output path, file format and (when asked) the engine change for the duration, and `preserved` puts them back.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from .scene_state import preserved

# EEVEE's engine identifier: "BLENDER_EEVEE_NEXT" in Blender 4.2-4.x, "BLENDER_EEVEE" again from 5.0.
_EEVEE_IDS = ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE")


def engine_id(scene, choice: str) -> str:
    """The render engine identifier for a choice of the panel: SCENE (the scene's own), WORKBENCH or EEVEE."""
    if choice == "SCENE":
        return scene.render.engine
    if choice == "WORKBENCH":
        return "BLENDER_WORKBENCH"
    known = {item.identifier for item in scene.render.bl_rna.properties["engine"].enum_items}
    for identifier in _EEVEE_IDS:
        if identifier in known:
            return identifier
    raise ValueError(f"this Blender has no EEVEE engine (engines: {', '.join(sorted(known))})")


def iter_renders(scene, frames, out_dir, paths: list, stem: str, engine: str | None = None, rgba: bool | None = None):
    """Render each scene frame in `frames` as `<stem>_0001.png`, ... (numbered by position) at the render size,
    with `engine` (None: the scene's). One render per step: yields (done, total, frame); `paths` gets the files.
    `rgba` None: RGBA exactly when the film is transparent."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with preserved(scene):
        render = scene.render
        if engine is not None:
            render.engine = engine
        settings = render.image_settings
        if "media_type" in settings.bl_rna.properties:  # Blender 5.0+
            settings.media_type = "IMAGE"
        settings.file_format = "PNG"
        settings.color_mode = "RGBA" if (render.film_transparent if rgba is None else rgba) else "RGB"
        settings.color_depth = "8"
        render.use_file_extension = True
        for index, frame in enumerate(frames):
            path = out / f"{stem}_{index + 1:04d}.png"
            scene.frame_set(frame)
            render.filepath = str(path)
            state = bpy.ops.render.render(write_still=True, scene=scene.name)
            if "FINISHED" not in state or not path.exists():
                raise RuntimeError(f"rendering frame {frame} of {scene.name!r} with {render.engine} failed ({state})")
            paths.append(str(path))
            yield index + 1, len(frames), frame
