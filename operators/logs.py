"""marionette.open_install_log / open_server_log: a log file in the system's text viewer, opened one way for both."""

from pathlib import Path

import bpy

from ..backend import server_control
from . import install, paths


def open_log(operator, candidates: list[Path], missing: str) -> set[str]:
    """Open the first of `candidates` that exists; none: warn with `missing` (what has not happened yet)."""
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        operator.report({"WARNING"}, missing)
        return {"CANCELLED"}
    bpy.ops.wm.path_open(filepath=str(path))
    return {"FINISHED"}


class MARIONETTE_OT_open_install_log(bpy.types.Operator):
    bl_idname = "marionette.open_install_log"
    bl_label = "Open Install Log"
    bl_description = "Open the install log (everything pip printed) in the system's text viewer"

    def execute(self, context):
        return open_log(self, [install.log_path()], "Nothing was installed yet: there is no install log")


class MARIONETTE_OT_open_server_log(bpy.types.Operator):
    bl_idname = "marionette.open_server_log"
    bl_label = "Open Server Log"
    bl_description = "Open the local server's log in the system's text viewer"

    def execute(self, context):
        data = paths.server_data_dir()
        # A server that never got as far as its own log: what it printed says why.
        logs = [server_control.server_log_path(data), server_control.log_path(data)]
        return open_log(self, logs, "No local server has run yet: there is no server log")


CLASSES = (MARIONETTE_OT_open_install_log, MARIONETTE_OT_open_server_log)
