"""marionette.capture_guides: render the guides of the frame range into a folder (also used by Generate)."""

from pathlib import Path

import bpy

from ..backend import camera, job_spec, keyframes, passes
from . import paths


def capture(scene, snap: dict, folder: Path) -> tuple[dict, dict]:
    """Render the guides a job needs. Returns (guide files by form field, camera path). Leaves the scene as it was."""
    frames = list(range(snap["frame_start"], snap["frame_end"] + 1))
    folder.mkdir(parents=True, exist_ok=True)
    rendered = passes.render_guides(scene, frames, folder)
    files = {}
    for kind in ("depth", "normal"):
        if kind in snap["guides"]:
            files[kind] = [Path(p).read_bytes() for p in rendered[kind]]
    if snap["keyframes"]:
        files["keyframe"] = [Path(p).read_bytes() for p in keyframes.render_keyframes(scene, snap["keyframes"], folder)]
    path = camera.camera_path(scene, frames, rendered["median_depth"])
    return files, path


class MARIONETTE_OT_capture_guides(bpy.types.Operator):
    bl_idname = "marionette.capture_guides"
    bl_label = "Preview Guides"
    bl_description = "Render the depth and normal guides and the camera path of the frame range into a folder"

    def execute(self, context):
        scene = context.scene
        snap = job_spec.snapshot(scene.marionette, scene)
        for problem in job_spec.problems(snap, scene.camera is not None):
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        folder = paths.new_job_dir(scene.marionette) / "guides"
        try:
            capture(scene, snap, folder)
        except Exception as e:  # a failed render must not leave a half-changed scene or a traceback
            self.report({"ERROR"}, f"Capturing guides failed: {e}")
            return {"CANCELLED"}
        context.window_manager.marionette.job_dir = str(folder)
        self.report({"INFO"}, f"Guides written to {folder}")
        return {"FINISHED"}


CLASSES = (MARIONETTE_OT_capture_guides,)
