"""The N-panel: View3D > Sidebar > Marionette, with one sub-panel per concern."""

import bpy

from ..backend import catalog, compositing, estimate, job_spec, pose_capture, rigs
from ..operators import camera_match, generate
from ..properties import CHECKPOINTS_OWN
from ..server.protocol import MOTION_LORAS
from . import cache, lists, model_roots, models, models_list, stylise
from .text import wrap as _wrap

# Where a Blender's text fields have no placeholder, an empty VAE field simply shows nothing.
_VAE_PLACEHOLDER = (
    {"placeholder": CHECKPOINTS_OWN} if "placeholder" in bpy.types.UILayout.bl_rna.functions["prop"].parameters else {}
)


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Marionette"


def _estimate(context) -> dict:
    """The estimate and refusals of the current settings, recomputed only when the file's data changed."""

    def compute():
        scene = context.scene
        snap = job_spec.snapshot(scene.marionette, scene)
        result = estimate.estimate(snap, catalog.motion_info(snap["motion_module"]))
        result["refusals"] = job_spec.problems(snap, scene.camera is not None) + result["refusals"]
        return result

    return cache.per_version(("estimate", cache.settings_key(context.scene)), compute)


class MARIONETTE_PT_main(_Panel, bpy.types.Panel):
    bl_label = "Marionette"

    def draw(self, context):
        layout = self.layout
        runtime = context.window_manager.marionette
        if generate.running():  # from the run itself: a file opened mid-job cannot hide the Cancel button
            layout.progress(factor=runtime.progress, text=runtime.status)
            if generate._active.phase == "capture":
                layout.label(text=f"Rendering frame {runtime.capture_frame}: Esc or Cancel stops", icon="RENDER_STILL")
            layout.operator("marionette.cancel", icon="CANCEL")
            preview = bpy.data.images.get("Marionette Preview")
            if preview is not None and preview.preview is not None:
                layout.template_icon(icon_value=preview.preview.icon_id, scale=8)
        else:
            found = _estimate(context)
            col = layout.column()
            col.enabled = not found["refusals"]
            col.operator("marionette.generate", icon="RENDER_ANIMATION")
            for problem in found["refusals"]:
                for i, line in enumerate(_wrap(problem, 44)):
                    layout.label(text=line, icon="CANCEL" if i == 0 else "BLANK1")
            if not found["refusals"]:
                for line in found["lines"]:
                    layout.label(text=line, icon="TIME" if line is found["lines"][0] else "BLANK1")
            for warning in found["warnings"]:
                for i, line in enumerate(_wrap(warning, 44)):
                    layout.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
            layout.label(text=runtime.status)
        if runtime.error:
            box = layout.box()
            for problem in runtime.error.splitlines():  # a 422 names one problem a line
                for i, line in enumerate(_wrap(problem, 48)):
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
        row = layout.row(align=True)
        row.operator("marionette.server_release", icon="TRASH")
        row.operator("marionette.open_server_log", text="Open Log", icon="TEXT")


def _motion_support(s) -> str:
    info = catalog.motion_info(s.motion_module)
    if info is None:
        return (
            f"{s.motion_module!r}: not on the server's list (Refresh Models)"
            if catalog.names("motion_module")
            else "Server models unknown: Refresh Models"
        )
    what = {"v2": "camera motion LoRAs", "v3": "SparseCtrl keyframes"}.get(info["version"], "no LoRAs or keyframes")
    return f"{info['version']}: up to {info['max_frames']} frames at once; {what}"


class MARIONETTE_PT_prompt(_Panel, bpy.types.Panel):
    bl_label = "Prompt & Models"
    bl_parent_id = "MARIONETTE_PT_main"

    def draw(self, context):
        s = context.scene.marionette
        layout = self.layout
        layout.prop(s, "prompt", text="")
        layout.prop(s, "negative_prompt", text="")
        col = layout.column(align=True)
        row = col.row(align=True)
        row.prop(s, "base")
        row.operator("marionette.refresh_models", text="", icon="FILE_REFRESH")
        col.prop(s, "vae", **_VAE_PLACEHOLDER)
        col.prop(s, "clip_skip")
        col.prop(s, "prompt_weighting")
        col.prop(s, "motion_module")
        col.label(text=_motion_support(s), icon="INFO")
        col = layout.column(align=True)
        col.prop(s, "seed")
        col.prop(s, "steps")
        col.prop(s, "guidance")
        col.prop(s, "scheduler")
        layout.label(text="Image LoRAs")
        row = layout.row()
        row.template_list("MARIONETTE_UL_loras", "", s, "loras", s, "lora_index", rows=2)
        col = row.column(align=True)
        col.operator("marionette.lora_add", text="", icon="ADD")
        col.operator("marionette.lora_remove", text="", icon="REMOVE")
        col.separator()
        col.operator("marionette.lora_move", text="", icon="TRIA_UP").direction = "UP"
        col.operator("marionette.lora_move", text="", icon="TRIA_DOWN").direction = "DOWN"


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
                box.prop(s, f"{kind}_model")
                row = box.row(align=True)
                row.prop(s, f"{kind}_weight")
                row.prop(s, f"{kind}_start")
                row.prop(s, f"{kind}_end")
        layout.operator("marionette.capture_guides", icon="IMAGE_ZDEPTH")


class MARIONETTE_PT_pose(_Panel, bpy.types.Panel):
    """The pose guide: which armatures are captured, what their bone maps cover, and the hand-made map."""

    bl_label = "Pose from Rigs"
    bl_parent_id = "MARIONETTE_PT_guides"

    @classmethod
    def poll(cls, context):
        return context.scene.marionette.use_pose

    def draw(self, context):
        s = context.scene.marionette
        layout = self.layout
        row = layout.row(align=True)
        row.prop(s, "pose_hands")
        row.prop(s, "pose_own_body_hides")
        if s.pose_own_body_hides:
            layout.prop(s, "pose_thickness")
        armatures = [o for o in context.view_layer.objects if o.type == "ARMATURE"]
        if not armatures:
            for line in _wrap(pose_capture.describe_missing(context.scene, context.view_layer), 44):
                layout.label(text=line)
            return
        for obj in sorted(armatures, key=lambda o: o.name):
            report = cache.rig_report(obj.data)
            box = layout.box()
            row = box.row()
            row.prop(obj.data.marionette_pose, "include", text=obj.name)
            row.label(
                text=f"{report['kind']}: {len(report['mapped'])}/18", icon="CHECKMARK" if report["usable"] else "ERROR"
            )
            details = [report["why"]] if report["why"] else []
            if report["custom"]:
                details.append("picked by hand: " + ", ".join(p.replace("_", " ") for p in report["custom"]))
            if report["missing"]:
                details.append("missing " + ", ".join(p.replace("_", " ") for p in report["missing"]))
            if report["estimated"]:
                estimated = ", ".join(p.replace("_", " ") for p in report["estimated"])
                details.append("estimated from the head's shape: " + estimated)
            if report["hands"]:
                details.append("hands: " + ", ".join(report["hands"]))
            if obj.hide_render:
                details.append("not captured: hidden in renders")
            for line in _wrap("; ".join(details), 44):
                box.label(text=line)


class MARIONETTE_PT_pose_map(_Panel, bpy.types.Panel):
    """Bones picked by hand for the active armature; saved in the .blend, they win over the automatic map."""

    bl_label = "Bone Map"
    bl_parent_id = "MARIONETTE_PT_pose"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return context.scene.marionette.use_pose

    def draw(self, context):
        layout = self.layout
        obj = context.object
        if obj is None or obj.type != "ARMATURE":
            layout.label(text="Select an armature to edit its map")
            return
        armature, picks = obj.data, obj.data.marionette_pose
        report = cache.rig_report(armature)
        if report["why"]:
            for line in _wrap(report["why"], 44):
                layout.label(text=line, icon="ERROR")
        layout.label(text=f"{obj.name}: empty fields use the automatic map")
        for point in rigs.BODY_POINTS + (rigs.HEAD,):
            auto = report["automatic"].get(point)
            mapped = point in report["mapped"] or (point == rigs.HEAD and auto)
            split = layout.split(factor=0.35, align=True)
            split.label(text=point.replace("_", " ").capitalize(), icon="CHECKMARK" if mapped else "ERROR")
            row = split.row(align=True)
            row.prop_search(picks, point, armature, "bones", text="", icon="BONE_DATA")
            row.prop(picks, f"{point}_end", text="")
            if auto and not getattr(picks, point):
                split = layout.split(factor=0.35)
                split.label(text="")
                split.label(text=f"auto: {auto}")


class MARIONETTE_PT_camera(_Panel, bpy.types.Panel):
    bl_label = "Camera Motion"
    bl_parent_id = "MARIONETTE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.marionette
        runtime = context.window_manager.marionette
        layout = self.layout
        layout.prop(s, "camera_motion", expand=True)
        if s.camera_motion == "manual":
            col = layout.column(align=True)
            for name in MOTION_LORAS:
                col.prop(s, f"lora_{name}")
        elif s.camera_motion == "cameractrl":
            layout.label(
                text="Needs the v3 motion module and the server's CameraCtrl (camera_control model)",
                icon="INFO" if s.motion_module == "v3" else "ERROR",
            )
        else:
            layout.operator("marionette.match_camera", icon="CAMERA_DATA")
            if runtime.camera_stale:
                layout.label(text="The camera changed: matching again", icon="FILE_REFRESH")
            if runtime.camera_match:
                layout.label(text="Whole clip:")
                for line in _wrap(runtime.camera_match, 40):
                    layout.label(text=line, icon="CAMERA_DATA")
                for window in runtime.camera_windows.splitlines():
                    for i, line in enumerate(_wrap(window, 40)):
                        layout.label(text=line, icon="DOT" if i == 0 else "BLANK1")
                plot = bpy.data.images.get(camera_match.PLOT_IMAGE)
                if plot is not None and plot.preview is not None:
                    layout.template_icon(icon_value=plot.preview.icon_id, scale=10)
            else:
                layout.label(text="Not matched yet: Match Camera, or on Generate")
        info = catalog.motion_info(s.motion_module)
        if (info is None or info["version"] != "v2") and (
            s.camera_motion == "auto" or any(getattr(s, f"lora_{n}") > 0 for n in MOTION_LORAS)
        ):
            layout.label(text="Camera LoRAs act on the v2 motion module only", icon="INFO")


class MARIONETTE_PT_keyframes(_Panel, bpy.types.Panel):
    bl_label = "Keyframes"
    bl_parent_id = "MARIONETTE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.marionette
        layout = self.layout
        info = catalog.motion_info(s.motion_module)
        if info is None or info["version"] != "v3":
            layout.label(text="Keyframes have no effect: they need a v3 motion module", icon="INFO")
        row = layout.row()
        row.template_list("MARIONETTE_UL_keyframes", "", s, "keyframes", s, "keyframe_index", rows=2)
        col = row.column(align=True)
        col.operator("marionette.keyframe_add", text="", icon="ADD")
        col.operator("marionette.keyframe_remove", text="", icon="REMOVE")
        layout.operator("marionette.keyframe_add", icon="KEYFRAME_HLT")
        layout.prop(s, "sparsectrl_model")
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
        layout.prop(s, "long_side")
        width, height = s.generation_size(context.scene)
        layout.label(text=f"Generates {width}x{height} at {r.fps / r.fps_base:g} fps (scene aspect)")
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
        row = layout.row(align=True)
        row.prop(s, "replace_render")
        if compositing.replaces_render(context.scene):
            row.operator("marionette.restore_render", text="Restore", icon="LOOP_BACK")
        layout.operator("marionette.import_result", icon="IMPORT")


CLASSES = (
    (
        MARIONETTE_PT_main,
        MARIONETTE_PT_server,
        MARIONETTE_PT_prompt,
        MARIONETTE_PT_guides,
        MARIONETTE_PT_pose,
        MARIONETTE_PT_pose_map,
        MARIONETTE_PT_camera,
        MARIONETTE_PT_keyframes,
        MARIONETTE_PT_output,
    )
    + stylise.CLASSES
    + models.CLASSES
)

_register, _unregister = bpy.utils.register_classes_factory(
    lists.CLASSES + model_roots.CLASSES + models_list.CLASSES + CLASSES
)


def register():
    _register()
    cache.register()


def unregister():
    cache.unregister()
    _unregister()
