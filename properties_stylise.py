"""Scene settings for styling beyond the guides: image references (IP-Adapter), starting from the render
(video-to-video), FreeInit and motion scale. `settings_props()` adds them to `Scene.marionette`."""

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .backend import catalog

_BLEND_RELATIVE = {"options": {"PATH_SUPPORTS_BLEND_RELATIVE"}} if bpy.app.version >= (4, 5) else {}


def _ip_adapters(self, context, edit_text):
    return catalog.search("ip_adapter", edit_text)


def _is_camera(self, obj):
    return obj.type == "CAMERA"


def _fraction(name, default, what):
    return FloatProperty(name=name, default=default, min=0.0, max=1.0, subtype="FACTOR", description=what)


class MARIONETTE_PG_reference(bpy.types.PropertyGroup):
    """One image reference: an image file, or the character rendered alone from the scene."""

    source: EnumProperty(
        name="Source",
        items=[
            ("FILE", "Image file", "An image file on disk"),
            ("RENDER", "Render", "The character alone on a neutral background, rendered from the scene"),
        ],
        default="FILE",
    )
    image_path: StringProperty(name="Image", subtype="FILE_PATH", description="The reference image", **_BLEND_RELATIVE)
    subject: PointerProperty(
        type=bpy.types.Object,
        name="Character",
        description="The object rendered alone (with its children and the meshes an armature deforms)",
    )
    subject_collection: PointerProperty(
        type=bpy.types.Collection,
        name="Collection",
        description="Or a collection whose objects are rendered alone (wins over Character)",
    )
    frame: IntProperty(name="Frame", default=1, description="Scene frame rendered as the reference")
    camera: PointerProperty(
        type=bpy.types.Object,
        name="Camera",
        poll=_is_camera,
        description="Camera the reference is rendered from; empty: the scene camera",
    )
    model: StringProperty(
        name="Model",
        search=_ip_adapters,
        description="IP-Adapter name in the server's config; empty: the first the server lists",
    )
    weight: FloatProperty(name="Weight", default=0.6, min=0.0, max=2.0, description="How strongly frames take its look")
    start: _fraction("Start", 0.0, "Fraction of the denoising steps where the reference starts acting")
    end: _fraction("End", 1.0, "Fraction of the denoising steps where the reference stops acting")
    whole_clip: BoolProperty(name="Whole clip", default=True, description="Act on every frame; off: First..Last only")
    first: IntProperty(name="First", default=1, description="First scene frame the reference acts on")
    last: IntProperty(name="Last", default=16, description="Last scene frame the reference acts on")


# Identifiers of the guide engine choice; "EEVEE" resolves per Blender version (see backend/beauty.py).
INIT_ENGINES = [
    ("SCENE", "Scene's engine", "Render with the scene's own engine and settings"),
    ("WORKBENCH", "Workbench", "Flat solid shading: fast, shapes and colours only"),
    ("EEVEE", "EEVEE", "Real-time materials and lights"),
]


def settings_props() -> dict:
    """The annotations this module adds to the scene settings."""
    return {
        "references": CollectionProperty(type=MARIONETTE_PG_reference),
        "reference_index": IntProperty(),
        "use_init": BoolProperty(
            name="Start from the render",
            default=False,
            description="Video-to-video: render every frame and let the generation start from it",
        ),
        "init_strength": _fraction(
            "Strength", 0.6, "How much the generation changes the render: 0 keeps the render unchanged, 1 ignores it"
        ),
        "init_engine": EnumProperty(name="Engine", items=INIT_ENGINES, default="SCENE"),
        "free_init_iterations": IntProperty(
            name="FreeInit iterations",
            default=1,
            min=1,
            max=5,
            description="Smoother, more consistent motion: each iteration runs the whole generation again (1 = off)",
        ),
        "motion_scale": FloatProperty(
            name="Motion scale",
            default=1.0,
            min=0.0,
            soft_max=2.0,
            max=3.0,
            description="How much the motion module moves things: 1 as trained, below 1 calmer, above 1 livelier",
        ),
        "window_motion_scales": StringProperty(
            name="Per window",
            description="One motion scale per context window, separated by commas (e.g. 1, 1.4, 0.8); empty: "
            "Motion scale in every window",
        ),
    }


CLASSES = (MARIONETTE_PG_reference,)
