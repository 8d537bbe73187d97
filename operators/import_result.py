"""marionette.import_result: bring a job folder's frames into the compositor, sequencer or camera background."""

from pathlib import Path

import bpy
from bpy.props import StringProperty

from ..backend import compositing
from .generate import _targets


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
            compositing.import_result(scene, folder, count, settings.frame_range(scene)[0], _targets(settings),
                                      settings.over_render)
        except ValueError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported {count} frames from {folder}")
        return {"FINISHED"}


CLASSES = (MARIONETTE_OT_import_result,)
