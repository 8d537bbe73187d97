"""marionette.model_root_add / model_root_remove: the artist's model folders (A1111/Forge or ComfyUI installs, or
plain folders) that the server the add-on starts offers models from (`--model-root`), and what each holds.

What a folder holds is counted on a worker thread (directory listings only, server/model_layouts.py) and kept for
a while; the preferences show "Looking in this folder…" until then and are redrawn when the count is in.
"""

import os
import threading
import time

import bpy
from bpy.props import StringProperty

from .. import preferences
from ..backend import server_control
from ..server import model_layouts

LOOKING = "Looking in this folder…"
FRESH_S = 30.0  # a count older than this is redone (files come and go while Blender runs)

_lines: dict[str, tuple[float, str]] = {}
_pending: set[str] = set()
_lock = threading.Lock()


def folder_path(item) -> str:
    return os.path.normpath(os.path.expanduser(bpy.path.abspath(item.path))) if item.path else ""


def roots(prefs) -> list[str]:
    """The model folders as the server gets them (absolute, in the list's order)."""
    return [p for p in (folder_path(item) for item in prefs.model_roots) if p]


def _count(path: str) -> None:
    try:
        text = model_layouts.summary(path)
    except OSError as e:
        text = f"cannot read this folder ({e.strerror or e})"
    with _lock:
        _lines[path] = (time.monotonic(), text)
        _pending.discard(path)


def line(path: str, wait: bool = False) -> str:
    """What the folder holds, in the artist's words; counted in the background (`wait`: here and now)."""
    if wait:
        _count(path)
    with _lock:
        known = _lines.get(path)
        if known is not None and time.monotonic() - known[0] < FRESH_S:
            return known[1]
        if path not in _pending:
            _pending.add(path)
            threading.Thread(target=_count, args=(path,), name="marionette-model-folder", daemon=True).start()
            if not bpy.app.background and not bpy.app.timers.is_registered(_redraw_when_counted):
                bpy.app.timers.register(_redraw_when_counted, first_interval=0.2)
    return known[1] if known is not None else LOOKING


def _redraw_when_counted():
    with _lock:
        busy = bool(_pending)
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()
    return 0.2 if busy else None


def restart_needed(prefs) -> bool:
    """Whether the local server runs with other model folders than the list names now."""
    started = server_control.started_roots()
    return started is not None and not prefs.server_url and tuple(roots(prefs)) != started


class MARIONETTE_OT_model_root_add(bpy.types.Operator):
    bl_idname = "marionette.model_root_add"
    bl_label = "Add Folder"
    bl_description = (
        "Add a folder of models: your ComfyUI or AUTOMATIC1111/Forge folder (its checkpoints, LoRAs, VAEs, "
        "ControlNets and AnimateDiff models are found by themselves), or any folder of model files"
    )

    directory: StringProperty(subtype="DIR_PATH")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        prefs = preferences.get(context)
        path = os.path.normpath(os.path.expanduser(bpy.path.abspath(self.directory))) if self.directory else ""
        if not path or not os.path.isdir(path):
            self.report({"ERROR"}, f"not a folder: {self.directory or '(none chosen)'}")
            return {"CANCELLED"}
        if path in roots(prefs):
            self.report({"INFO"}, f"{path} is in the list already")
            return {"CANCELLED"}
        prefs.model_roots.add().path = path
        prefs.model_roots_index = len(prefs.model_roots) - 1
        line(path)
        context.preferences.is_dirty = True
        return {"FINISHED"}


class MARIONETTE_OT_model_root_remove(bpy.types.Operator):
    bl_idname = "marionette.model_root_remove"
    bl_label = "Remove Folder"
    bl_description = "Remove the selected folder from the list (nothing is deleted on disk)"

    @classmethod
    def poll(cls, context):
        return len(preferences.get(context).model_roots) > 0

    def execute(self, context):
        prefs = preferences.get(context)
        index = min(prefs.model_roots_index, len(prefs.model_roots) - 1)
        prefs.model_roots.remove(index)
        prefs.model_roots_index = max(0, min(index, len(prefs.model_roots) - 1))
        context.preferences.is_dirty = True
        return {"FINISHED"}


CLASSES = (MARIONETTE_OT_model_root_add, MARIONETTE_OT_model_root_remove)
