"""Preferences ▸ Model folders: the artist's A1111/Forge or ComfyUI folders, each with what was found in it."""

import bpy

from ..operators import model_roots as root_ops

EMPTY = "Add your ComfyUI or A1111/Forge folder to use the models you already have"
RESTART = "Model folders changed since the server started: stop the server and start it again to use them"


def _icon(text: str) -> str:
    return "ERROR" if text in ("folder not found", "not a folder") or text.startswith("cannot read") else "INFO"


class MARIONETTE_UL_model_roots(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        path = root_ops.folder_path(item)
        text = root_ops.line(path) if path else "no folder chosen"
        row = layout.row()
        row.label(text=path or "(empty)", icon="FILE_FOLDER")
        row.label(text=text, icon=_icon(text))


def draw(layout, prefs):
    box = layout.box()
    box.label(text="Model folders", icon="FILE_FOLDER")
    if not len(prefs.model_roots):
        box.label(text=EMPTY)
    else:
        box.template_list("MARIONETTE_UL_model_roots", "", prefs, "model_roots", prefs, "model_roots_index", rows=2)
    row = box.row()
    row.operator("marionette.model_root_add", icon="ADD")
    row.operator("marionette.model_root_remove", icon="REMOVE")
    if root_ops.restart_needed(prefs):
        box.label(text=RESTART, icon="ERROR")
        box.operator("marionette.server_stop", icon="CANCEL")


CLASSES = (MARIONETTE_UL_model_roots,)
