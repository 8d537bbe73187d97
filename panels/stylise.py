"""Sub-panels for styling beyond the guides: image references (IP-Adapter), starting from the render
(video-to-video), and Motion (FreeInit, motion scale)."""

import bpy

from ..backend import beauty, catalog, estimate
from .text import wrap


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Marionette"
    bl_parent_id = "MARIONETTE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}


def _labels(layout, text: str, icon: str = "INFO", width: int = 44):
    for i, line in enumerate(wrap(text, width)):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1")


def reference_support() -> str | None:
    """Why references cannot be used now, in the artist's words; None when the server has an IP-Adapter."""
    if catalog.names("ip_adapter"):
        return None
    if not catalog.names("base"):
        return "Server models unknown: start the server, then Refresh Models (Prompt & Models)"
    return (
        "References need an IP-Adapter model on the server, and it has none: add one to the server's model "
        "config (an [ip_adapter.NAME] entry, e.g. ip-adapter_sd15 from h94/IP-Adapter), then Refresh Models"
    )


class MARIONETTE_PT_references(_Panel, bpy.types.Panel):
    bl_label = "Image References"

    def draw(self, context):
        s = context.scene.marionette
        layout = self.layout
        why = reference_support()
        if why:
            _labels(layout, why, icon="ERROR" if s.references else "INFO")
            if not s.references:
                return
        row = layout.row()
        row.template_list("MARIONETTE_UL_references", "", s, "references", s, "reference_index", rows=2)
        col = row.column(align=True)
        col.operator("marionette.reference_add", text="", icon="ADD")
        col.operator("marionette.reference_remove", text="", icon="REMOVE")
        if not s.references:
            _labels(layout, "Add an image whose look the frames take: a file, or your character rendered alone")
            return
        item = s.references[min(s.reference_index, len(s.references) - 1)]
        box = layout.box()
        box.prop(item, "source", expand=True)
        if item.source == "FILE":
            box.prop(item, "image_path")
        else:
            box.prop(item, "subject")
            box.prop(item, "subject_collection")
            row = box.row(align=True)
            row.prop(item, "frame")
            row.prop(item, "camera", text="")
            subject = item.subject_collection or item.subject
            what = f"{subject.name!r}" if subject else "the character"
            _labels(
                box,
                f"Renders {what} alone at frame {item.frame} on a neutral grey background with the scene's engine "
                "when you Generate",
            )
        box.prop(item, "model")
        row = box.row(align=True)
        row.prop(item, "weight")
        row.prop(item, "start")
        row.prop(item, "end")
        box.prop(item, "whole_clip")
        if not item.whole_clip:
            row = box.row(align=True)
            row.prop(item, "first")
            row.prop(item, "last")


class MARIONETTE_PT_init(_Panel, bpy.types.Panel):
    bl_label = "Stylise the Render"

    def draw(self, context):
        s = context.scene.marionette
        layout = self.layout
        layout.prop(s, "use_init")
        if not s.use_init:
            _labels(layout, "Off: the frames are made from noise, guided by the guides only")
            return
        layout.prop(s, "init_strength", slider=True)
        layout.prop(s, "init_engine", expand=True)
        try:
            engine = beauty.engine_id(context.scene, s.init_engine)
        except ValueError as e:
            _labels(layout, str(e), icon="ERROR")
            return
        _labels(
            layout,
            f"Every frame is rendered with {engine.replace('BLENDER_', '').replace('_NEXT', '').title()} before "
            f"the job is sent; strength {s.init_strength:.2f}: 0 keeps the render unchanged, 1 ignores it",
        )


class MARIONETTE_PT_motion(_Panel, bpy.types.Panel):
    bl_label = "Motion"

    def draw(self, context):
        s = context.scene.marionette
        layout = self.layout
        layout.prop(s, "free_init_iterations")
        if s.free_init_iterations > 1:
            _labels(
                layout,
                f"FreeInit: smoother, more consistent motion; each iteration runs the whole generation again "
                f"({s.free_init_iterations}x the time)",
                icon="TIME",
            )
        else:
            _labels(layout, "FreeInit off (1 iteration); each extra iteration runs the whole generation again")
        layout.prop(s, "motion_scale")
        if s.motion_scale != 1.0:
            calmer = "calmer" if s.motion_scale < 1.0 else "livelier"
            _labels(layout, f"Motion {calmer} than the motion module was trained for (1 = as trained)")
        start, end = s.frame_range(context.scene)
        context_ = {"length": s.context_length, "overlap": s.context_overlap, "loop": s.loop}
        windows = estimate.windows(end - start + 1, context_) if s.use_context and end > start else 1
        if windows > 1 or s.window_motion_scales:
            layout.prop(s, "window_motion_scales")
            _labels(layout, f"{windows} context window(s): one value each, or empty for Motion scale everywhere")


CLASSES = (MARIONETTE_PT_references, MARIONETTE_PT_init, MARIONETTE_PT_motion)
