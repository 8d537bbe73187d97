"""The Models sub-panel, for a few models or an A1111 install's hundreds: a Filter field, then a folding section
per kind with its count ("LoRA (312)"), each a scrolling list (panels/models_list.py) that Blender draws a few
rows of. Sections open by themselves when they need the artist (a model to download, a download running or
failed); models of another family than SD1.5 (SDXL, Flux, ...) are listed on request, greyed with their family."""

import bpy

from .. import preferences
from ..operators import model_roots as root_ops
from ..operators import models as model_ops
from ..properties_models import KINDS
from . import models_list
from .model_roots import RESTART
from .text import wrap

ROWS = 8  # rows a kind's list shows before it scrolls (the artist can drag it taller)
NO_SERVER = "Start the server, then Refresh"
NO_MODELS = "The server lists no models: add a model folder in the preferences, then Refresh"


def heading(title: str, kind: models_list.Kind, view) -> str:
    """ "LoRA (312)", "LoRA (3 of 312)" while filtering, with what is missing and what is hidden."""
    count = kind.total + (kind.others if view.other_families else 0)
    parts = [f"{len(kind.shown)} of {count}" if view.filter else str(count)]
    if kind.missing:
        parts.append(f"{kind.missing} missing")
    if kind.others and not view.other_families:
        parts.append(f"{kind.others} of other families hidden")
    return f"{title} ({', '.join(parts)})"


def _section(layout, view, name: str, title: str, kind: models_list.Kind):
    reports = [(n, r) for (k, n), r in model_ops.downloads.items() if k == name]
    failed = [(n, r) for n, r in reports if r.get("state") == "error"]
    attention = kind.missing or failed or any(r.get("state") == "running" for _, r in reports)
    # A section's fold is Blender's own panel state; one that needs the artist, or holds what the filter found,
    # has a state of its own, open until the artist folds it.
    state = "_attention" if attention else "_found" if view.filter else ""
    header, body = layout.panel(f"marionette_models_{name}{state}", default_closed=not (attention or view.filter))
    header.label(text=heading(title, kind, view), icon="ERROR" if kind.missing or failed else "NONE")
    if body is None:
        return
    if kind.shown:
        rows = min(len(kind.shown), ROWS)
        body.template_list("MARIONETTE_UL_models", name, view, "rows", view, "index", rows=rows, maxrows=rows)
    else:
        body.label(text="Only models of other families: tick Other families to list them", icon="INFO")
    for model, report in failed:
        for i, line in enumerate(wrap(f"{model}: {report.get('error', '')}", 48)):
            body.label(text=line, icon="ERROR" if i == 0 else "BLANK1")


class MARIONETTE_PT_models(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Marionette"
    bl_label = "Models"
    bl_parent_id = "MARIONETTE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        prefs = preferences.get(context)
        layout.operator("marionette.models_refresh", icon="FILE_REFRESH")
        if root_ops.restart_needed(prefs):
            layout.label(text=RESTART, icon="ERROR")
        if not prefs.models_cache:
            layout.label(text=NO_SERVER)
            return
        view = context.window_manager.marionette_models
        if view.source != model_ops.source_key(prefs.models_cache):
            model_ops.sync_later()
            layout.label(text="Reading the model list…")
            return
        kinds = models_list.summary(view)
        if not kinds:
            layout.label(text=NO_MODELS)
            return
        row = layout.row(align=True)
        row.prop(view, "filter", text="", icon="VIEWZOOM")
        others = sum(kind.others for kind in kinds.values())
        if others:
            row.prop(view, "other_families", text=f"Other families ({others})", toggle=True)
        drawn = 0
        for name, title in KINDS.items():
            kind = kinds.get(name)
            if kind is None or (view.filter and not kind.shown):
                continue
            _section(layout, view, name, title, kind)
            drawn += 1
        if not drawn:
            layout.label(text=f"No model name contains {view.filter!r}", icon="INFO")


CLASSES = (MARIONETTE_PT_models,)
