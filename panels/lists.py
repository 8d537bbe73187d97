"""The UI lists of the panel: image LoRAs and SparseCtrl keyframes."""

import bpy


class MARIONETTE_UL_loras(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=True, icon="MODIFIER")
        row.prop(item, "weight", text="")


class MARIONETTE_UL_keyframes(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.prop(item, "frame", text="Frame", emboss=False, icon="KEYFRAME")
        start, end = data.frame_range(context.scene)
        if not start <= item.frame <= end:
            row.label(text="outside the range", icon="ERROR")


CLASSES = (MARIONETTE_UL_loras, MARIONETTE_UL_keyframes)
