"""Add-on preferences: the server environment (Install Server), how to reach or start the server."""

import bpy
from bpy.props import CollectionProperty, EnumProperty, IntProperty, StringProperty

from .server.protocol import DEFAULT_PORT

PACKAGE = __package__

TORCH_BUILDS = [
    ("AUTO", "Automatic", "CUDA with an NVIDIA GPU on Windows and Linux, Metal (MPS) on Apple silicon, else CPU"),
    ("CUDA", "CUDA (NVIDIA)", "The CUDA build of torch"),
    ("CPU", "CPU only", "The small CPU-only build: slow, but runs anywhere"),
    ("MPS", "Metal (Apple silicon)", "The macOS arm64 build, which runs on the GPU through Metal"),
    ("REGISTRY", "Registry default", "Whatever build the package registry serves for the pinned torch"),
]


class MarionetteModelRoot(bpy.types.PropertyGroup):
    path: StringProperty(
        name="Folder",
        subtype="DIR_PATH",
        description="An AUTOMATIC1111/Forge or ComfyUI folder, or any folder of model files",
    )


class MarionettePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    server_python: StringProperty(
        name="Server Python",
        subtype="FILE_PATH",
        description="Python interpreter with the server's packages; Install Server sets it to its environment. "
        "The add-on runs `python -m server` from the extension folder with it",
    )
    install_python: StringProperty(
        name="Python for Install",
        subtype="FILE_PATH",
        description="Python 3.11 that Install Server makes the environment with (empty: Blender's own)",
    )
    torch_build: EnumProperty(
        name="Torch build",
        items=TORCH_BUILDS,
        default="AUTO",
        description="Which build of torch Install Server installs",
    )
    install_status: StringProperty(name="Install status", default="")
    server_url: StringProperty(
        name="Server URL",
        description="Use a server that is already running (e.g. http://gpu-box:8420) instead of starting one",
    )
    port: IntProperty(
        name="Port",
        default=DEFAULT_PORT,
        min=0,
        max=65535,
        description="Port of the server the add-on starts (0: any free port)",
    )
    token: StringProperty(
        name="Token",
        subtype="PASSWORD",
        description="Bearer token of the server at Server URL (a server the add-on starts gets "
        "a fresh random one by itself)",
    )
    models_file: StringProperty(
        name="Model config",
        subtype="FILE_PATH",
        description="TOML file naming your checkpoints and model folders (empty: the public models by hub id)",
    )
    model_roots: CollectionProperty(
        type=MarionetteModelRoot,
        name="Model folders",
        description="Your ComfyUI or A1111/Forge folders (or plain folders of models): the server the add-on starts "
        "offers their checkpoints, LoRAs, VAEs, ControlNets and AnimateDiff models by name",
    )
    model_roots_index: IntProperty(name="Model folder", default=0, min=0)
    extra_args: StringProperty(name="Extra server options", description="e.g. --dtype bfloat16 or --max-upload-mb 1024")
    output_folder: StringProperty(
        name="Results of unsaved files",
        subtype="DIR_PATH",
        default="",
        description="Where generated frames go while the .blend is not saved yet "
        "(empty: Marionette in your home folder); never the temp folder",
    )
    models_cache: StringProperty(
        name="Models", default="", description="The server's model list as last fetched, shown while it is offline"
    )

    def draw(self, context):
        from .backend import installer
        from .operators import install
        from .panels import model_roots

        layout = self.layout
        model_roots.draw(layout, self)
        box = layout.box()
        box.label(text="Server environment", icon="CONSOLE")
        job = installer.current
        if job is not None and job.state == "running":
            box.progress(factor=job.fraction, text=job.message or "Installing")
            row = box.row()
            row.operator("marionette.install_cancel", icon="CANCEL")
            row.operator("marionette.open_install_log", icon="TEXT")
        else:
            state, line = install.env_health()
            box.label(text=f"{install.env_dir()}: {line}")
            label = {"healthy": "Check Install", "absent": "Install Server", "outdated": "Update Server"}.get(
                state, "Repair Server"
            )
            row = box.row()
            row.operator("marionette.install_server", text=label, icon="IMPORT")
            row.operator("marionette.open_install_log", icon="TEXT")
            if self.install_status:
                box.label(text=self.install_status, icon="INFO")
        box.prop(self, "torch_build")
        try:
            choice = install.torch_choice(self)
            box.label(text=f"torch: {choice.build}: {choice.reason}")
        except ValueError as e:
            box.label(text=str(e), icon="ERROR")
        box.prop(self, "install_python")
        layout.prop(self, "server_python")
        layout.prop(self, "port")
        layout.prop(self, "models_file")
        layout.prop(self, "extra_args")
        layout.prop(self, "output_folder")
        layout.separator()
        layout.prop(self, "server_url")
        layout.prop(self, "token")


def get(context=None) -> MarionettePreferences:
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


def register():
    bpy.utils.register_class(MarionetteModelRoot)
    bpy.utils.register_class(MarionettePreferences)


def unregister():
    bpy.utils.unregister_class(MarionettePreferences)
    bpy.utils.unregister_class(MarionetteModelRoot)
