"""The Models panel's view of the server's models: one row per model (filled from the preferences' cached list by
operators/models.py), the filter text and whether models of another family are listed. On the window manager:
runtime state, never saved into the .blend."""

import bpy
from bpy.props import BoolProperty, CollectionProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

KINDS = {  # the server's model kinds the Models panel lists -> its section for them, in the panel's order
    "base": "Checkpoint",
    "vae": "VAE",
    "motion_module": "Motion module",
    "controlnet": "ControlNet",
    "sparsectrl": "SparseCtrl",
    "motion_lora": "Camera LoRA",
    "lora": "LoRA",
    "ip_adapter": "IP-Adapter",
    "image_encoder": "Image encoder",
}


class MARIONETTE_PG_model_row(bpy.types.PropertyGroup):
    name: StringProperty()
    kind: StringProperty()
    family: StringProperty()  # "sd15", "sdxl", ... ; "": unknown
    available: BoolProperty()
    downloadable: BoolProperty()
    size: FloatProperty()  # bytes (a float: files pass 2 GB); 0: unknown


class MARIONETTE_PG_models_view(bpy.types.PropertyGroup):
    rows: CollectionProperty(type=MARIONETTE_PG_model_row)
    index: IntProperty()
    filter: StringProperty(
        name="Filter",
        description="Show only the models whose name contains this text",
        options={"TEXTEDIT_UPDATE"},
    )
    other_families: BoolProperty(
        name="Other families",
        description="Also list the SDXL, SD2, SD3 and Flux models of your folders (Marionette runs SD1.5 ones)",
    )
    source: StringProperty()  # checksum of the cached list the rows were filled from


CLASSES = (MARIONETTE_PG_model_row, MARIONETTE_PG_models_view)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.marionette_models = PointerProperty(type=MARIONETTE_PG_models_view)


def unregister():
    del bpy.types.WindowManager.marionette_models
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
