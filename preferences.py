"""Add-on preferences: how to reach (or start) the generation server."""

import bpy
from bpy.props import IntProperty, StringProperty

from .server.protocol import DEFAULT_PORT


class MarionettePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    server_python: StringProperty(
        name="Server Python", subtype="FILE_PATH",
        description="Python interpreter with the server's packages (torch, diffusers); the add-on runs "
                    "`python -m server` from the extension folder with it")
    server_url: StringProperty(
        name="Server URL", description="Use a server that is already running (e.g. http://gpu-box:7860) instead "
                                       "of starting one")
    port: IntProperty(name="Port", default=DEFAULT_PORT, min=0, max=65535,
                      description="Port of the server the add-on starts (0: any free port)")
    token: StringProperty(name="Token", subtype="PASSWORD",
                          description="Bearer token the server requires (needed for a server on another machine)")
    models_file: StringProperty(name="Model config", subtype="FILE_PATH",
                                description="TOML file naming your checkpoints and model folders "
                                            "(empty: the public models by hub id)")
    extra_args: StringProperty(name="Extra server options", description="e.g. --dtype bfloat16 or --max-upload-mb 1024")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "server_python")
        layout.prop(self, "port")
        layout.prop(self, "models_file")
        layout.prop(self, "extra_args")
        layout.separator()
        layout.prop(self, "server_url")
        layout.prop(self, "token")


def get(context=None) -> MarionettePreferences:
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


def register():
    bpy.utils.register_class(MarionettePreferences)


def unregister():
    bpy.utils.unregister_class(MarionettePreferences)
