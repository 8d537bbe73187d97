"""marionette.match_camera: ask the server's /plan what the camera animation matches, before any job.

The panel shows the matched motion LoRAs per window and the server's plot. When the camera (or its animation)
changes after a match, a depsgraph handler marks the match stale and a one-second timer matches again (in a
window session; headless callers run the operator themselves).
"""

import base64

import bpy
from bpy.app.handlers import persistent

from .. import preferences
from ..backend import camera, job_spec, server_control
from ..backend.client import ServerError
from ..backend.model_errors import artist_message
from . import paths
from .images import named_image

PLOT_IMAGE = "Marionette Camera Plot"


def describe_windows(plan: dict) -> str:
    """One line per window: 'frames 1-16: pan left 0.8, zoom in 0.35' (scene frames)."""
    lines = []
    for window in plan.get("windows") or []:
        loras = (
            ", ".join(f"{m['name'].replace('_', ' ')} {m['weight']:g}" for m in window["motion_loras"])
            or "no camera motion"
        )
        lines.append(f"frames {window['start'] + plan['_first']}-{window['end'] - 1 + plan['_first']}: {loras}")
    return "\n".join(lines)


def match(context) -> dict:
    """The server's plan for the current settings with the camera path and automatic camera motion."""
    scene = context.scene
    snap = job_spec.snapshot(scene.marionette, scene)
    frames = list(range(snap["frame_start"], snap["frame_end"] + 1))
    render = scene.render
    saved = render.resolution_x, render.resolution_y, render.resolution_percentage
    try:
        render.resolution_x, render.resolution_y, render.resolution_percentage = snap["width"], snap["height"], 100
        path = camera.camera_path(scene, frames, [None] * len(frames))
    finally:
        render.resolution_x, render.resolution_y, render.resolution_percentage = saved
    spec = job_spec.build_spec({**snap, "camera_motion": "auto"}, path)
    prefs = preferences.get(context)
    try:
        plan = server_control.client_for(prefs).plan(spec.to_dict())
    except ServerError as e:  # a model the server lacks, said as the panel's choice
        raise ServerError(e.status, artist_message(e, spec.to_dict()), e.detail) from None
    plan["_first"] = snap["frame_start"]
    return plan


def show(context, plan: dict):
    runtime = context.window_manager.marionette
    matched = plan.get("matched_motion_loras") or []
    runtime.camera_match = (
        ", ".join(f"{m['name'].replace('_', ' ')} {m['weight']:g}" for m in matched)
        or "no camera motion (static or shaking): no LoRA"
    )
    runtime.camera_windows = describe_windows(plan)
    runtime.camera_stale = False
    if plan.get("plot_png"):
        path = paths.server_data_dir().parent / "camera_plot.png"
        path.write_bytes(base64.b64decode(plan["plot_png"]))
        named_image(PLOT_IMAGE, path).preview_ensure()


class MARIONETTE_OT_match_camera(bpy.types.Operator):
    bl_idname = "marionette.match_camera"
    bl_label = "Match Camera"
    bl_description = "Ask the server which camera motion LoRAs the camera animation matches, window by window"

    @classmethod
    def poll(cls, context):
        return context.scene.camera is not None

    def execute(self, context):
        try:
            plan = match(context)
        except (ServerError, ValueError) as e:
            self.report({"ERROR"}, f"Match camera: {e}")
            return {"CANCELLED"}
        show(context, plan)
        self.report({"INFO"}, f"Camera matched: {context.window_manager.marionette.camera_match}")
        return {"FINISHED"}


def _rematch():
    context = bpy.context
    if context.window_manager.marionette.camera_stale and context.scene.camera is not None:
        try:
            show(context, match(context))
        except (ServerError, ValueError):
            pass  # the panel keeps saying the match is out of date
    return None


@persistent
def mark_stale(scene, depsgraph):
    """The camera moved, or its lens or animation changed, after a match: the match is out of date."""
    runtime = bpy.context.window_manager.marionette
    if not runtime.camera_match or runtime.camera_stale or scene.camera is None:
        return
    names = {scene.camera.name, scene.camera.data.name}
    if any(getattr(update.id, "name", None) in names for update in depsgraph.updates):
        runtime.camera_stale = True
        if not bpy.app.background and not bpy.app.timers.is_registered(_rematch):
            bpy.app.timers.register(_rematch, first_interval=1.0)


CLASSES = (MARIONETTE_OT_match_camera,)


def register():
    bpy.app.handlers.depsgraph_update_post.append(mark_stale)


def unregister():
    if mark_stale in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(mark_stale)
