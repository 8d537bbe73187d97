"""Add, remove and reorder the image LoRAs, SparseCtrl keyframes and image references shown as lists in the panel."""

import bpy
from bpy.props import EnumProperty


def _settings(context):
    return context.scene.marionette


def _remove_active(settings, items: str, index: str):
    """Remove the list's active item; the next one (or the new last) becomes active."""
    collection = getattr(settings, items)
    collection.remove(min(getattr(settings, index), len(collection) - 1))
    setattr(settings, index, max(0, min(getattr(settings, index), len(collection) - 1)))


class MARIONETTE_OT_lora_add(bpy.types.Operator):
    bl_idname = "marionette.lora_add"
    bl_label = "Add LoRA"
    bl_description = "Add an image LoRA (pick its name from the server's list)"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = _settings(context)
        s.loras.add()
        s.lora_index = len(s.loras) - 1
        return {"FINISHED"}


class MARIONETTE_OT_lora_move(bpy.types.Operator):
    bl_idname = "marionette.lora_move"
    bl_label = "Move LoRA"
    bl_description = "Move the selected image LoRA up or down (LoRAs are applied in this order)"
    bl_options = {"REGISTER", "UNDO"}

    direction: EnumProperty(items=[("UP", "Up", ""), ("DOWN", "Down", "")])

    @classmethod
    def poll(cls, context):
        return len(_settings(context).loras) > 1

    def execute(self, context):
        s = _settings(context)
        target = s.lora_index + (-1 if self.direction == "UP" else 1)
        if 0 <= target < len(s.loras):
            s.loras.move(s.lora_index, target)
            s.lora_index = target
        return {"FINISHED"}


class MARIONETTE_OT_keyframe_add(bpy.types.Operator):
    bl_idname = "marionette.keyframe_add"
    bl_label = "Add Current Frame"
    bl_description = "Render the current frame as a SparseCtrl RGB keyframe of the animation"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s, frame = _settings(context), context.scene.frame_current
        frames = [k.frame for k in s.keyframes]
        if frame in frames:
            self.report({"INFO"}, f"Frame {frame} is already a keyframe")
            s.keyframe_index = frames.index(frame)
            return {"CANCELLED"}
        item = s.keyframes.add()
        item.frame = frame
        # the list stays in frame order, the order the server receives them in
        position = sorted(frames + [frame]).index(frame)
        s.keyframes.move(len(s.keyframes) - 1, position)
        s.keyframe_index = position
        return {"FINISHED"}


class MARIONETTE_OT_reference_add(bpy.types.Operator):
    bl_idname = "marionette.reference_add"
    bl_label = "Add Reference"
    bl_description = (
        "Add an image reference: an image file, or the selected character rendered alone at the current frame"
    )
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s, scene = _settings(context), context.scene
        item = s.references.add()
        item.frame = scene.frame_current
        item.first, item.last = s.frame_range(scene)
        obj = context.object
        if obj is not None and obj.type not in {"CAMERA", "LIGHT"}:
            item.source, item.subject = "RENDER", obj
        s.reference_index = len(s.references) - 1
        return {"FINISHED"}


def _remove_operator(name: str, items: str, label: str, description: str):
    """The Remove operator of one list: removes the active item (the lists differ only in their names)."""

    def poll(cls, context):
        return len(getattr(_settings(context), items)) > 0

    def execute(self, context):
        _remove_active(_settings(context), items, f"{name}_index")
        return {"FINISHED"}

    return type(
        f"MARIONETTE_OT_{name}_remove",
        (bpy.types.Operator,),
        {
            "bl_idname": f"marionette.{name}_remove",
            "bl_label": label,
            "bl_description": description,
            "bl_options": {"REGISTER", "UNDO"},
            "poll": classmethod(poll),
            "execute": execute,
        },
    )


MARIONETTE_OT_lora_remove = _remove_operator("lora", "loras", "Remove LoRA", "Remove the selected image LoRA")
MARIONETTE_OT_keyframe_remove = _remove_operator(
    "keyframe", "keyframes", "Remove Keyframe", "Remove the selected keyframe"
)
MARIONETTE_OT_reference_remove = _remove_operator(
    "reference", "references", "Remove Reference", "Remove the selected image reference"
)

CLASSES = (
    MARIONETTE_OT_lora_add,
    MARIONETTE_OT_lora_remove,
    MARIONETTE_OT_lora_move,
    MARIONETTE_OT_keyframe_add,
    MARIONETTE_OT_keyframe_remove,
    MARIONETTE_OT_reference_add,
    MARIONETTE_OT_reference_remove,
)
