"""The UI lists of the panel: image LoRAs, SparseCtrl keyframes and image references."""

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


class MARIONETTE_UL_references(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        if item.source == "FILE":
            name = bpy.path.basename(item.image_path) or "no image chosen"
            row.label(text=name, icon="IMAGE_DATA")
        else:
            subject = item.subject_collection or item.subject
            row.label(text=f"{subject.name if subject else 'no character'} @ {item.frame}", icon="RENDER_STILL")
        row.prop(item, "weight", text="")


CLASSES = (MARIONETTE_UL_loras, MARIONETTE_UL_keyframes, MARIONETTE_UL_references)
