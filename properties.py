"""Settings the artist chooses (saved with the scene) and runtime state (on the window manager, never saved)."""

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

from . import properties_models, properties_stylise
from .backend import catalog, estimate
from .backend.rigs import BODY_POINTS, HEAD
from .server.protocol import MOTION_LORAS, SCHEDULERS

# Blender 4.5+ warns about "//" paths in properties that do not declare they take them.
_BLEND_RELATIVE = {"options": {"PATH_SUPPORTS_BLEND_RELATIVE"}} if bpy.app.version >= (4, 5) else {}


def _search(kind):
    """A StringProperty search callback offering the server's names of `kind` (remembered when it is offline);
    any other text can still be typed."""

    def search(self, context, edit_text):
        return catalog.search(kind, edit_text)

    return search


CHECKPOINTS_OWN = "Checkpoint's own"  # the VAE picker's first entry: no separate VAE (stored as "")


def _search_vae(self, context, edit_text):
    return [CHECKPOINTS_OWN] + catalog.search("vae", edit_text)


def _vae_picked(self, context):
    if self.vae.strip() == CHECKPOINTS_OWN:
        self.vae = ""


class MARIONETTE_PG_lora(bpy.types.PropertyGroup):
    name: StringProperty(
        name="LoRA", description="Image LoRA name in the server's model config", search=_search("lora")
    )
    weight: FloatProperty(name="Weight", default=0.8, min=-2.0, max=4.0, soft_min=0.0, soft_max=1.5)


class MARIONETTE_PG_keyframe(bpy.types.PropertyGroup):
    frame: IntProperty(name="Frame", description="Scene frame rendered as a SparseCtrl RGB keyframe")


def _bone_props(point):
    label = point.replace("_", " ").capitalize()
    what = (
        "the head bone, whose frame places the face points the rig has no bones for"
        if point == HEAD
        else f"the {point.replace('_', ' ')} keypoint (the character's own left and right)"
    )
    return {
        point: StringProperty(name=label, description=f"Bone for {what}; empty: the automatic map"),
        f"{point}_end": EnumProperty(
            name="End",
            default="HEAD",
            items=[
                ("HEAD", "Head", "The bone's head (where it starts)"),
                ("TAIL", "Tail", "The bone's tail (its tip)"),
            ],
        ),
    }


class MARIONETTE_PG_pose_map(bpy.types.PropertyGroup):
    """Per armature (saved with the Armature datablock): include it in the pose guide, and bones picked by hand,
    which win over the automatic map."""

    include: BoolProperty(
        name="Include", default=True, description="Capture this armature's pose for the OpenPose guide"
    )
    for _point in BODY_POINTS + (HEAD,):
        __annotations__.update(_bone_props(_point))
    del _point


def _guide_props(kind, default_on, default_weight):
    return {
        f"use_{kind}": BoolProperty(
            name=kind.capitalize(), default=default_on, description=f"Guide the animation with the {kind} ControlNet"
        ),
        f"{kind}_weight": FloatProperty(name="Weight", default=default_weight, min=0.0, max=2.0),
        f"{kind}_start": FloatProperty(
            name="Start",
            default=0.0,
            min=0.0,
            max=1.0,
            subtype="FACTOR",
            description="Fraction of the denoising steps where the ControlNet starts",
        ),
        f"{kind}_end": FloatProperty(
            name="End",
            default=1.0,
            min=0.0,
            max=1.0,
            subtype="FACTOR",
            description="Fraction of the denoising steps where the ControlNet stops",
        ),
        f"{kind}_model": StringProperty(
            name="Model",
            search=_search("controlnet"),
            description=f"ControlNet name in the server's config; empty: the one named "
            f"{'openpose' if kind == 'pose' else kind}",
        ),
    }


class MARIONETTE_PG_settings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", default="a wooden marionette dancing on a stage, soft light")
    negative_prompt: StringProperty(name="Negative", default="blurry, low quality, deformed")
    seed: IntProperty(name="Seed", default=0, min=0)
    steps: IntProperty(name="Steps", default=25, min=1, max=150)
    guidance: FloatProperty(name="Guidance", default=7.5, min=0.0, max=30.0)
    scheduler: EnumProperty(name="Scheduler", items=[(s, s, "") for s in SCHEDULERS], default="ddim")
    base: StringProperty(
        name="Checkpoint",
        default="sd15",
        search=_search("base"),
        description="Base model name in the server's config (pick one, or type a name)",
    )
    clip_skip: IntProperty(
        name="Clip skip",
        default=1,
        min=1,
        max=12,
        description="How the prompt is read: 1 for most checkpoints, 2 for anime checkpoints made for it (their model "
        "page says so). The same as Clip skip in AUTOMATIC1111, or CLIP Set Last Layer at -2 in ComfyUI",
    )
    prompt_weighting: EnumProperty(
        name="Prompt weighting",
        items=[
            (
                "a1111",
                "A1111",
                "Read the prompt as AUTOMATIC1111 does: (word:1.2), [word] weaker, BREAK, "
                "[from:to:when] prompt editing",
            ),
            (
                "comfy",
                "ComfyUI",
                "Read the prompt as ComfyUI's CLIP Text Encode does: (word:1.2) leans from the "
                "empty prompt, square brackets are plain text",
            ),
        ],
        default="a1111",
        description="Whose way to read weights like (word:1.2): pick the program the prompt was written for",
    )
    motion_module: StringProperty(
        name="Motion module",
        default="v2",
        search=_search("motion_module"),
        description="Motion module name in the server's config (v2 for camera LoRAs, v3 for SparseCtrl keyframes)",
    )
    vae: StringProperty(
        name="VAE",
        default="",
        search=_search_vae,
        update=_vae_picked,
        description="VAE name in the server's config that decodes the frames (A1111's SD VAE, e.g. vae-ft-mse); "
        "empty: the checkpoint's own",
    )
    loras: CollectionProperty(type=MARIONETTE_PG_lora)
    lora_index: IntProperty()

    __annotations__.update(_guide_props("depth", True, 1.0))
    __annotations__.update(_guide_props("normal", False, 0.6))
    __annotations__.update(_guide_props("pose", False, 1.0))
    pose_hands: BoolProperty(
        name="Hands", default=True, description="Add the 21 hand keypoints of each hand when the rig has finger bones"
    )
    pose_own_body_hides: BoolProperty(
        name="Own body hides",
        default=False,
        description="Let a character's own meshes hide its keypoints (e.g. the far arm behind the torso); off: "
        "only other objects hide them",
    )
    pose_thickness: FloatProperty(
        name="Body thickness",
        default=0.15,
        min=0.0,
        soft_max=1.0,
        subtype="DISTANCE",
        description="With Own body hides: the character's surface must be this far in front of a keypoint to hide "
        "it (joints sit inside the body)",
    )

    # identifiers are the protocol's CAMERA_MOTION_MODES (saved files store the item's number, not its name)
    camera_motion: EnumProperty(
        name="Camera motion",
        default="manual",
        items=[
            ("manual", "Manual", "Set the motion LoRA weights by hand"),
            ("auto", "From camera (LoRAs, v2)", "Match the motion LoRAs to the scene camera's animation"),
            (
                "cameractrl",
                "Exact camera (CameraCtrl, v3)",
                "Condition the v3 motion module on the scene camera's exact path with CameraCtrl",
            ),
        ],
    )
    __annotations__.update(
        {
            f"lora_{name}": FloatProperty(
                name=name.replace("_", " ").title(),
                default=0.0,
                min=0.0,
                max=2.0,
                description=f"Camera {name.replace('_', ' ')}: {meaning}",
            )
            for name, (meaning, _stem, _repo) in MOTION_LORAS.items()
        }
    )

    keyframes: CollectionProperty(type=MARIONETTE_PG_keyframe)
    keyframe_index: IntProperty()
    keyframe_weight: FloatProperty(name="Keyframe strength", default=1.0, min=0.0, max=2.0)
    sparsectrl_model: StringProperty(
        name="SparseCtrl",
        search=_search("sparsectrl"),
        description="SparseCtrl model name in the server's config; empty: rgb",
    )

    use_context: BoolProperty(
        name="Context windows",
        default=True,
        description="Generate clips longer than a window as overlapping windows (the motion "
        "modules were trained on 16 frames)",
    )
    context_length: IntProperty(name="Window", default=16, min=2, max=32)
    context_overlap: IntProperty(name="Overlap", default=4, min=0, max=31)
    loop: BoolProperty(
        name="Loop",
        default=False,
        description="Make the last frames lead seamlessly into the first (windows wrap around)",
    )
    fuse: EnumProperty(
        name="Blend",
        default="pyramid",
        items=[
            ("pyramid", "Pyramid", "Frames near a window's centre count more where windows overlap"),
            ("flat", "Flat", "Overlapping windows count the same"),
        ],
    )
    __annotations__.update(properties_stylise.settings_props())
    prompts_from_markers: BoolProperty(
        name="Prompts from markers",
        default=False,
        description="Prompt travel: each timeline marker in the range is a prompt from its frame on (its name, or "
        "the text of a Text datablock with that name), blended between markers",
    )

    long_side: IntProperty(
        name="Long side",
        default=512,
        min=64,
        soft_max=1024,
        max=2048,
        step=8,
        subtype="PIXEL",
        description="Generation size: this many pixels on the longer side, the other side from "
        "the scene's aspect, both rounded to multiples of 8 (SD1.5 is trained at 512)",
    )
    use_scene_range: BoolProperty(name="Scene frame range", default=True)
    frame_start: IntProperty(name="Start", default=1)
    frame_end: IntProperty(name="End", default=16)
    output_dir: StringProperty(
        name="Folder",
        default="//marionette/",
        subtype="DIR_PATH",
        description="Where job folders with the frames are written (for an unsaved file, "
        "// paths go under the output folder of the preferences)",
        **_BLEND_RELATIVE,
    )
    import_compositor: BoolProperty(name="Compositor", default=True)
    import_sequencer: BoolProperty(name="Sequencer", default=False)
    import_camera_background: BoolProperty(name="Camera background", default=False)
    over_render: BoolProperty(
        name="Over the render",
        default=False,
        description="In the compositor, lay the frames over the render with Alpha Over",
    )
    replace_render: BoolProperty(
        name="Replace render",
        default=False,
        description="Feed the frames to the compositor's output, so F12 renders them; off: "
        "they show in the Viewer only and F12 renders the scene as before",
    )

    def generation_size(self, scene):
        """(width, height) Marionette generates at: its own long side, the scene's aspect, multiples of 8."""
        r = scene.render
        return estimate.generation_size(
            self.long_side, r.resolution_x, r.resolution_y, r.pixel_aspect_x / r.pixel_aspect_y
        )

    def frame_range(self, scene):
        if self.use_scene_range:
            return scene.frame_start, scene.frame_end
        return self.frame_start, self.frame_end


class MARIONETTE_PG_runtime(bpy.types.PropertyGroup):
    """Status shown in the panel. On the window manager, so it is never saved into the .blend."""

    status: StringProperty(default="Idle")
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    running: BoolProperty(default=False)
    job_id: StringProperty()
    job_dir: StringProperty(subtype="DIR_PATH")
    frames_received: IntProperty()
    error: StringProperty()
    server: StringProperty(default="Not checked")
    camera_match: StringProperty(description="Motion LoRAs the server matched to the camera for the last job")
    camera_windows: StringProperty(description="Matched motion LoRAs per window, one line each")
    camera_stale: BoolProperty(description="The camera moved since the last Match camera")
    capture_frame: IntProperty(description="Scene frame the capture is rendering")


CLASSES = properties_stylise.CLASSES + (
    MARIONETTE_PG_lora,
    MARIONETTE_PG_keyframe,
    MARIONETTE_PG_pose_map,
    MARIONETTE_PG_settings,
    MARIONETTE_PG_runtime,
)


def register():
    properties_models.register()
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.marionette = PointerProperty(type=MARIONETTE_PG_settings)
    bpy.types.Armature.marionette_pose = PointerProperty(type=MARIONETTE_PG_pose_map)
    bpy.types.WindowManager.marionette = PointerProperty(type=MARIONETTE_PG_runtime)


def unregister():
    del bpy.types.WindowManager.marionette
    del bpy.types.Armature.marionette_pose
    del bpy.types.Scene.marionette
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    properties_models.unregister()
