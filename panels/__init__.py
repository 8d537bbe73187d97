"""The N-panel: View3D > Sidebar > Marionette, with one sub-panel per concern."""

import bpy

from ..server.protocol import MOTION_LORAS


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Marionette"


class MARIONETTE_PT_main(_Panel, bpy.types.Panel):
    bl_label = "Marionette"

    def draw(self, context):
        layout = self.layout
        runtime = context.window_manager.marionette
        if runtime.running:
            layout.progress(factor=runtime.progress, text=runtime.status)
            layout.operator("marionette.cancel", icon="CANCEL")
            preview = bpy.data.images.get("Marionette Preview")
            if preview is not None and preview.preview is not None:
                layout.template_icon(icon_value=preview.preview.icon_id, scale=8)
        else:
            layout.operator("marionette.generate", icon="RENDER_ANIMATION")
            layout.label(text=runtime.status)
        if runtime.error:
            box = layout.box()
            for i, line in enumerate(_wrap(runtime.error, 48)):
                box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")


class MARIONETTE_PT_server(_Panel, bpy.types.Panel):
    bl_label = "Server"
    bl_parent_id = "MARIONETTE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        for line in _wrap(context.window_manager.marionette.server, 48):
            layout.label(text=line)
        row = layout.row(align=True)
        row.operator("marionette.server_start", text="Start")
        row.operator("marionette.server_stop", text="Stop")
        row.operator("marionette.server_status", text="", icon="FILE_REFRESH")
        layout.operator("marionette.server_release", icon="TRASH")


class MARIONETTE_PT_prompt(_Panel, bpy.types.Panel):
    bl_label = "Prompt & Models"
    bl_parent_id = "MARIONETTE_PT_main"

    def draw(self, context):
        s = context.scene.marionette
        layout = self.layout
        layout.prop(s, "prompt", text="")
        layout.prop(s, "negative_prompt", text="")
        col = layout.column(align=True)
        col.prop(s, "base")
        col.prop(s, "motion_module")
        col = layout.column(align=True)
        col.prop(s, "seed")
        col.prop(s, "steps")
        col.prop(s, "guidance")
        col.prop(s, "scheduler")
        layout.label(text="Image LoRAs")
        for item in s.loras:
            row = layout.row(align=True)
            row.prop(item, "name", text="")
            row.prop(item, "weight", text="")


class MARIONETTE_PT_guides(_Panel, bpy.types.Panel):
    bl_label = "Guides"
    bl_parent_id = "MARIONETTE_PT_main"

    def draw(self, context):
        s = context.scene.marionette
        layout = self.layout
        for kind in ("depth", "normal", "pose"):
            box = layout.box()
            box.prop(s, f"use_{kind}")
            if getattr(s, f"use_{kind}"):
                row = box.row(align=True)
                row.prop(s, f"{kind}_weight")
                row.prop(s, f"{kind}_start")
                row.prop(s, f"{kind}_end")
        if s.use_pose:
            layout.label(text="Pose from rigs comes with rig support", icon="INFO")
        layout.operator("marionette.capture_guides", icon="IMAGE_ZDEPTH")


class MARIONETTE_PT_camera(_Panel, bpy.types.Panel):
    bl_label = "Camera Motion"
    bl_parent_id = "MARIONETTE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.marionette
        layout = self.layout
        layout.prop(s, "camera_motion", expand=True)
        if s.camera_motion == "MANUAL":
            col = layout.column(align=True)
            for name in MOTION_LORAS:
                col.prop(s, f"lora_{name}")
        else:
            matched = context.window_manager.marionette.camera_match
            layout.label(text="Matched for the last job:" if matched else "Matched to the camera on Generate")
            for line in _wrap(matched, 40):
                layout.label(text=line, icon="CAMERA_DATA")
        if s.motion_module != "v2" and (s.camera_motion == "AUTO" or any(
                getattr(s, f"lora_{n}") > 0 for n in MOTION_LORAS)):
            layout.label(text="Camera LoRAs act on the v2 motion module only", icon="INFO")


class MARIONETTE_PT_keyframes(_Panel, bpy.types.Panel):
    bl_label = "Keyframes"
    bl_parent_id = "MARIONETTE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.marionette
        layout = self.layout
        layout.label(text="SparseCtrl RGB keyframes (v3 motion module)")
        for item in s.keyframes:
            layout.prop(item, "frame")
        layout.prop(s, "keyframe_weight")


class MARIONETTE_PT_output(_Panel, bpy.types.Panel):
    bl_label = "Output"
    bl_parent_id = "MARIONETTE_PT_main"

    def draw(self, context):
        s = context.scene.marionette
        r = context.scene.render
        layout = self.layout
        layout.prop(s, "use_scene_range")
        if not s.use_scene_range:
            row = layout.row(align=True)
            row.prop(s, "frame_start")
            row.prop(s, "frame_end")
        size = (r.resolution_x * r.resolution_percentage // 100, r.resolution_y * r.resolution_percentage // 100)
        layout.label(text=f"Size {size[0]}x{size[1]} at {r.fps / r.fps_base:g} fps (render settings)")
        box = layout.box()
        box.prop(s, "use_context")
        if s.use_context:
            row = box.row(align=True)
            row.prop(s, "context_length")
            row.prop(s, "context_overlap")
            row = box.row(align=True)
            row.prop(s, "loop")
            row.prop(s, "fuse", text="")
        layout.prop(s, "prompts_from_markers")
        layout.prop(s, "output_dir")
        col = layout.column(heading="Import into")
        col.prop(s, "import_compositor")
        col.prop(s, "import_sequencer")
        col.prop(s, "import_camera_background")
        layout.prop(s, "over_render")
        layout.operator("marionette.import_result", icon="IMPORT")


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


CLASSES = (MARIONETTE_PT_main, MARIONETTE_PT_server, MARIONETTE_PT_prompt, MARIONETTE_PT_guides,
           MARIONETTE_PT_camera, MARIONETTE_PT_keyframes, MARIONETTE_PT_output)

register, unregister = bpy.utils.register_classes_factory(CLASSES)
