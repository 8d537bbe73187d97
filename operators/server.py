"""marionette.server_start / server_stop / server_release / server_status."""

import bpy

from .. import preferences
from ..backend import server_control
from ..backend.client import ServerError
from . import install, model_roots, paths


def server_python(prefs) -> str:
    """The Python that runs the server: the preference, else the installed environment's, else ""."""
    return bpy.path.abspath(prefs.server_python) if prefs.server_python else install.installed_python()


def server_starter(context):
    """A function for a worker thread (it touches no bpy): starts or adopts the local server unless a Server URL
    is set, reporting through on_status(text), and returns the client to use. Raises LaunchError."""
    prefs = preferences.get(context)
    server_url, port, token = prefs.server_url, prefs.port, prefs.token
    args = (server_python(prefs), port, bpy.path.abspath(prefs.models_file), prefs.extra_args, paths.server_data_dir())
    roots = model_roots.roots(prefs)

    def run(on_status=server_control.set_status):
        if not server_url:
            server_control.ensure(*args, on_status=on_status, model_roots=roots)
        return server_control.client(server_url, port, token)

    return run


def _check(context) -> str:
    """Ask the server for its health; returns a one-line status for the panel."""
    prefs = preferences.get(context)
    try:
        health = server_control.client_for(prefs).health()
    except ServerError as e:
        state = server_control.state()
        if state == "starting":
            return server_control.status() or "Starting server"
        if state == "failed":
            return f"Failed to start: {server_control.start_error()}"
        return f"Not reachable ({e}); log: {server_control.log_path(paths.server_data_dir())}"
    if health.get("service") != server_control.SERVICE:
        return f"{server_control.url(prefs.server_url, prefs.port)} is not a Marionette server"
    return (
        f"Ready on {health['device']} ({health.get('dtype', '?')}), {len(health['loaded'])} models loaded, "
        f"version {health.get('version')}"
    )


class MARIONETTE_OT_server_start(bpy.types.Operator):
    bl_idname = "marionette.server_start"
    bl_label = "Start Server"
    bl_description = "Start the generation server (or use the one already running)"

    def execute(self, context):
        prefs = preferences.get(context)
        if prefs.server_url:
            self.report({"INFO"}, f"Using the server at {prefs.server_url}; nothing to start")
            return {"FINISHED"}
        server_control.start(
            server_python(prefs),
            prefs.port,
            bpy.path.abspath(prefs.models_file),
            prefs.extra_args,
            paths.server_data_dir(),
            wait=bpy.app.background,
            model_roots=model_roots.roots(prefs),
        )
        runtime = context.window_manager.marionette
        if server_control.state() == "failed":
            runtime.server = f"Failed to start: {server_control.start_error()}"
            self.report({"ERROR"}, runtime.server)
            return {"CANCELLED"}
        runtime.server = "Starting server" if server_control.state() == "starting" else _check(context)
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
    bl_description = "Stop the local server this Blender started or adopted"

    def execute(self, context):
        server_control.stop(paths.server_data_dir())
        context.window_manager.marionette.server = "Stopped"
        return {"FINISHED"}


class MARIONETTE_OT_server_release(bpy.types.Operator):
    bl_idname = "marionette.server_release"
    bl_label = "Release Memory"
    bl_description = "Unload every model on the server and free GPU memory"

    def execute(self, context):
        prefs = preferences.get(context)
        try:
            server_control.client_for(prefs).release()
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


CLASSES = (
    MARIONETTE_OT_server_start,
    MARIONETTE_OT_server_stop,
    MARIONETTE_OT_server_release,
    MARIONETTE_OT_server_status,
)
