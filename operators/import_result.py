"""marionette.import_result: bring a job folder's frames into the compositor, sequencer or camera background."""

from pathlib import Path

import bpy
from bpy.props import StringProperty

from ..backend import compositing
from .job_display import targets


class MARIONETTE_OT_import_result(bpy.types.Operator):
    bl_idname = "marionette.import_result"
    bl_label = "Import Result"
    bl_description = "Import the frames of a job folder (default: the last job) as an image sequence"

    directory: StringProperty(subtype="DIR_PATH", description="Job folder holding frame_0001.png ...")

    def execute(self, context):
        scene, settings = context.scene, context.scene.marionette
        folder = Path(bpy.path.abspath(self.directory or context.window_manager.marionette.job_dir))
        count = len(list(folder.glob("frame_*.png"))) if folder.is_dir() else 0
        try:
            compositing.import_result(
                scene,
                folder,
                count,
                settings.frame_range(scene)[0],
                targets(settings),
                settings.over_render,
                replace_render=settings.replace_render,
            )
        except ValueError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported {count} frames from {folder}")
        return {"FINISHED"}


class MARIONETTE_OT_restore_render(bpy.types.Operator):
    bl_idname = "marionette.restore_render"
    bl_label = "Restore Render"
    bl_description = "F12 renders the scene again: the compositor's result is fed by what fed it before the import"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return compositing.replaces_render(context.scene)

    def execute(self, context):
        compositing.restore_render(context.scene)
        context.scene.marionette.replace_render = False
        self.report({"INFO"}, "F12 renders the scene again")
        return {"FINISHED"}


CLASSES = (MARIONETTE_OT_import_result, MARIONETTE_OT_restore_render)
