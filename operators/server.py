"""marionette.server_start / server_stop / server_release / server_status."""

import bpy

from .. import preferences
from ..backend import server_control
from ..backend.client import ServerError
from . import paths


def _check(context) -> str:
    """Ask the server for its health; returns a one-line status for the panel."""
    prefs = preferences.get(context)
    try:
        health = server_control.client(prefs.server_url, prefs.port, prefs.token).health()
    except ServerError as e:
        state = server_control.state()
        if state == "starting":
            return "Starting..."
        if state == "failed":
            return f"Failed to start: {server_control.start_error()}"
        return f"Not reachable ({e}); log: {server_control.log_path(paths.server_data_dir())}"
    return f"Ready on {health['device']} ({len(health['loaded'])} models loaded)"


class MARIONETTE_OT_server_start(bpy.types.Operator):
    bl_idname = "marionette.server_start"
    bl_label = "Start Server"
    bl_description = "Start the generation server with the Server Python from the preferences"

    def execute(self, context):
        prefs = preferences.get(context)
        if prefs.server_url:
            self.report({"INFO"}, f"Using the server at {prefs.server_url}; nothing to start")
            return {"FINISHED"}
        data = paths.server_data_dir()
        server_control.start(prefs.server_python, prefs.port, prefs.token, prefs.models_file, prefs.extra_args,
                             data, wait=bpy.app.background)
        runtime = context.window_manager.marionette
        if server_control.state() == "failed":
            runtime.server = f"Failed to start: {server_control.start_error()}"
            self.report({"ERROR"}, runtime.server)
            return {"CANCELLED"}
        runtime.server = "Starting..." if server_control.state() == "starting" else _check(context)
        if not bpy.app.background:
            bpy.app.timers.register(_poll_start, first_interval=0.5)
        return {"FINISHED"}


def _poll_start():
    """Timer: update the panel until the server started (or failed)."""
    wm = bpy.context.window_manager
    wm.marionette.server = _check(bpy.context)
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
    return 0.5 if server_control.state() == "starting" else None


class MARIONETTE_OT_server_stop(bpy.types.Operator):
    bl_idname = "marionette.server_stop"
    bl_label = "Stop Server"
    bl_description = "Stop the server this Blender started"

    def execute(self, context):
        server_control.stop()
        context.window_manager.marionette.server = "Stopped"
        return {"FINISHED"}


class MARIONETTE_OT_server_release(bpy.types.Operator):
    bl_idname = "marionette.server_release"
    bl_label = "Release Memory"
    bl_description = "Unload every model on the server and free GPU memory"

    def execute(self, context):
        prefs = preferences.get(context)
        try:
            server_control.client(prefs.server_url, prefs.port, prefs.token).release()
        except ServerError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        context.window_manager.marionette.server = _check(context)
        return {"FINISHED"}


class MARIONETTE_OT_server_status(bpy.types.Operator):
    bl_idname = "marionette.server_status"
    bl_label = "Check Server"
    bl_description = "Ask the server whether it is ready"

    def execute(self, context):
        context.window_manager.marionette.server = _check(context)
        return {"FINISHED"}


CLASSES = (MARIONETTE_OT_server_start, MARIONETTE_OT_server_stop, MARIONETTE_OT_server_release,
           MARIONETTE_OT_server_status)
