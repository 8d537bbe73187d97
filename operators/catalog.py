"""marionette.refresh_models: fill the pickers from the server's /models (remembered for when it is offline)."""

import bpy

from .. import preferences
from ..backend import catalog, server_control
from ..backend.client import ServerError
from . import paths


def load_cached():
    """The names remembered from the last refresh, for a session that has not reached the server yet."""
    return catalog.load(paths.catalog_file())


class MARIONETTE_OT_refresh_models(bpy.types.Operator):
    bl_idname = "marionette.refresh_models"
    bl_label = "Refresh Models"
    bl_description = "Ask the server which checkpoints, motion modules, ControlNets and LoRAs it has"

    def execute(self, context):
        prefs = preferences.get(context)
        client = server_control.client_for(prefs)
        try:
            found = catalog.refresh(client, paths.catalog_file())
        except ServerError as e:
            load_cached()
            self.report({"WARNING"}, f"{e}; the pickers keep the names remembered from the last refresh")
            return {"CANCELLED"}
        count = sum(len(found[kind]) for kind in catalog.KINDS)
        self.report({"INFO"}, f"{count} models on the server")
        return {"FINISHED"}


CLASSES = (MARIONETTE_OT_refresh_models,)
