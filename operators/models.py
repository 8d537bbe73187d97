"""marionette.models_refresh / model_download: the server's models, whether they are here, and fetching them."""

import json
import zlib

import bpy
from bpy.props import StringProperty

from .. import preferences
from ..backend import server_control
from ..backend.catalog import natural_key
from ..backend.client import ServerError
from ..properties_models import KINDS

# (kind, name) -> the server's last download report; the Models panel draws progress bars from it.
downloads: dict[tuple[str, str], dict] = {}


def cached_models(prefs) -> dict:
    try:
        return json.loads(prefs.models_cache) if prefs.models_cache else {}
    except ValueError:
        return {}


_key = ["", "00000000-0"]  # the last list and its checksum


def source_key(cache: str) -> str:
    """A checksum of the cached list (the rows remember the one they were filled from), computed once per list."""
    if cache != _key[0]:
        _key[:] = cache, f"{zlib.crc32(cache.encode()):08x}-{len(cache)}"
    return _key[1]


def sync_rows(prefs, view):
    """The panel's rows from the cached list: per kind, the models that are not here first (they need the artist),
    then by name as artists sort ("lora2" before "lora10")."""
    view.rows.clear()
    models = cached_models(prefs)
    for kind in KINDS:
        for entry in sorted(models.get(kind) or [], key=lambda e: (bool(e.get("available")), natural_key(e["name"]))):
            row = view.rows.add()
            row.name, row.kind, row.family = entry["name"], kind, entry.get("family") or ""
            row.available, row.downloadable = bool(entry.get("available")), bool(entry.get("downloadable"))
            row.size = entry.get("size") or 0
    view.source = source_key(prefs.models_cache)


def _sync_now():
    sync_rows(preferences.get(), bpy.context.window_manager.marionette_models)
    _redraw()


def sync_later():
    """Fill the rows on the next tick: a draw cannot write them (the list of a previous session, a file opened)."""
    if not bpy.app.timers.is_registered(_sync_now):
        bpy.app.timers.register(_sync_now, first_interval=0.0)


def _redraw():
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


class MARIONETTE_OT_models_refresh(bpy.types.Operator):
    bl_idname = "marionette.models_refresh"
    bl_label = "Refresh Models"
    bl_description = "Ask the server which models it has and which are on this machine"

    def execute(self, context):
        try:
            models = server_control.client_for(preferences.get(context)).models()
        except ServerError as e:
            self.report({"ERROR"}, f"{e}; the list shown is the one from the last time the server answered")
            return {"CANCELLED"}
        prefs = preferences.get(context)
        prefs.models_cache = json.dumps(models)
        sync_rows(prefs, context.window_manager.marionette_models)
        return {"FINISHED"}


class MARIONETTE_OT_model_download(bpy.types.Operator):
    bl_idname = "marionette.model_download"
    bl_label = "Download"
    bl_description = "Download this model into the Hugging Face cache of the server's machine"

    kind: StringProperty()
    name: StringProperty()

    def execute(self, context):
        client, key = server_control.client_for(preferences.get(context)), (self.kind, self.name)
        try:
            downloads[key] = client.download(self.kind, self.name)
        except ServerError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}

        def poll():
            try:
                downloads[key] = report = client.download_status(*key)
            except ServerError as e:
                downloads[key] = {"state": "error", "error": str(e)}
                return None
            _redraw()
            if report["state"] == "running":
                return 0.5
            if report["state"] == "done":
                bpy.ops.marionette.models_refresh()
            return None

        if bpy.app.background:
            import time

            while poll() is not None:
                time.sleep(0.5)
            report = downloads[key]
            if report["state"] != "done":
                self.report({"ERROR"}, report.get("error") or f"download {report['state']}")
                return {"CANCELLED"}
            return {"FINISHED"}
        bpy.app.timers.register(poll, first_interval=0.5)
        return {"FINISHED"}


CLASSES = (MARIONETTE_OT_models_refresh, MARIONETTE_OT_model_download)


def unregister():
    if bpy.app.timers.is_registered(_sync_now):
        bpy.app.timers.unregister(_sync_now)
