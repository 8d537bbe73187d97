"""The generated frames on disk as Blender sees them: checks of a result folder, paths relative to the .blend, and
the colour space the frames are tagged with (compositing.py's module doc, "Colour").

Everything is checked before anything in the file changes.
"""

from __future__ import annotations

import numbers
import os

import bpy

from .protocol import frame_filename

TAG = "marionette"  # custom property on the nodes, strips and images Marionette's import owns


def check_frames(folder, count) -> str:
    """The absolute folder, or ValueError saying what to fix."""
    if not folder:
        raise ValueError("No result folder given: pass the job's frame folder.")
    folder = os.path.abspath(bpy.path.abspath(str(folder)))
    if not os.path.isdir(folder):
        raise ValueError(f"Result folder {folder!r} does not exist: check the job folder path.")
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
        raise ValueError(f"Frame count must be a whole number of at least 1, got {count!r}.")
    if count == 0:
        raise ValueError(f"No frames to import in {folder!r} yet: wait for frame_0001.png, or pick the job folder.")
    missing = [frame_filename(i) for i in range(count) if not os.path.isfile(os.path.join(folder, frame_filename(i)))]
    if missing:
        shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
        raise ValueError(
            f"{len(missing)} of {count} frames are missing in {folder!r} ({shown}): "
            f"import only the frames that have arrived (count = frames on disk)."
        )
    return folder


def check_frame_start(frame_start):
    if isinstance(frame_start, bool) or not isinstance(frame_start, numbers.Integral):
        raise ValueError(f"frame_start must be a whole frame number, got {frame_start!r}.")


def blend_path(path: str) -> str:
    """`path` relative to the .blend ("//…") when the .blend is saved and the path lies under its folder."""
    if not bpy.data.filepath:
        return path
    blend_dir = os.path.dirname(os.path.abspath(bpy.data.filepath))
    if os.path.commonpath([blend_dir, os.path.abspath(path)]) != blend_dir:
        return path
    return bpy.path.relpath(path)


_VIEW_OUTPUT = {
    "Standard": "{display}",
    "AgX": "AgX Base {display}",
    "Filmic": "Filmic {display}",
    "Khronos PBR Neutral": "Khronos PBR Neutral {display}",
}


def display_colorspace(scene) -> str:
    """The input colour space equal to what the scene's view transform writes on its display device, so that an
    image tagged with it displays as its file; "sRGB" for a view without one (False Color, Raw...)."""
    view, display = scene.view_settings.view_transform, scene.display_settings.display_device
    known = {
        item.identifier for item in bpy.types.ColorManagedInputColorspaceSettings.bl_rna.properties["name"].enum_items
    }
    name = _VIEW_OUTPUT.get(view, "sRGB").format(display=display)
    return name if name in known else "sRGB"
