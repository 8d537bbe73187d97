"""The Models sub-panel: every model of the server's config, whether its files are here, Download for the rest;
models of another family than SD1.5 (SDXL, Flux, ...) greyed with their family."""

import bpy

from .. import preferences
from ..backend.protocol import MODEL_FAMILIES
from ..operators import model_roots as root_ops
from ..operators import models as model_ops
from .model_roots import RESTART

KINDS = (
    "base",
    "vae",
    "motion_module",
    "controlnet",
    "sparsectrl",
    "motion_lora",
    "lora",
    "ip_adapter",
    "image_encoder",
)


def _size(size) -> str:
    return f"{size / 1e9:.1f} GB" if size and size >= 1e8 else f"{size / 1e6:.0f} MB" if size else "size unknown"


class MARIONETTE_PT_models(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Marionette"
    bl_label = "Models"
    bl_parent_id = "MARIONETTE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.operator("marionette.models_refresh", icon="FILE_REFRESH")
        if root_ops.restart_needed(preferences.get(context)):
            layout.label(text=RESTART, icon="ERROR")
        models = model_ops.cached_models(preferences.get(context))
        if not models:
            layout.label(text="Start the server, then Refresh")
        for kind in KINDS:
            entries = models.get(kind) or []
            if not entries:
                continue
            col = layout.column(align=True)
            col.label(text=kind.replace("_", " ").capitalize())
            for entry in entries:
                report = model_ops.downloads.get((kind, entry["name"]))
                row = col.row(align=True)
                family = entry.get("family")
                if family not in (None, "sd15"):
                    row.active = False
                    named = MODEL_FAMILIES.get(family, family)
                    row.label(text=f"{entry['name']}: {named} — not usable with SD1.5", icon="CANCEL")
                    continue
                if report and report.get("state") == "running" and report.get("total"):
                    row.progress(
                        factor=report["done"] / report["total"],
                        text=f"{entry['name']}: {report['done'] / 1e6:.0f} / {report['total'] / 1e6:.0f} MB",
                    )
                    continue
                if entry.get("available"):
                    row.label(text=entry["name"], icon="CHECKMARK")
                    continue
                row.label(text=f"{entry['name']} (missing, {_size(entry.get('size'))})", icon="ERROR")
                if entry.get("downloadable"):
                    op = row.operator("marionette.model_download", text="Download", icon="IMPORT")
                    op.kind, op.name = kind, entry["name"]
                if report and report.get("state") == "error":
                    col.label(text=report.get("error", "")[:120])


CLASSES = (MARIONETTE_PT_models,)
