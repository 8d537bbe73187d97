"""`blender -b hero.blend --command marionette batch ...`: the headless batch as a command of the extension.

Registered with `bpy.utils.register_cli_command` (Blender 4.2+); `execute` receives the arguments that follow the
command id, as Blender passes them.
"""

import bpy

COMMAND = "marionette"
_handle = None


def execute(argv: list[str]) -> int:
    from . import run

    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: blender -b FILE.blend --command {COMMAND} batch [options]   (batch --help for the options)")
        return 0 if argv else 2
    if argv[0] != "batch":
        print(f"unknown {COMMAND} command {argv[0]!r}; the commands are: batch")
        return 2
    return run.main(argv[1:])


def register():
    global _handle
    if hasattr(bpy.utils, "register_cli_command"):
        _handle = bpy.utils.register_cli_command(COMMAND, execute)


def unregister():
    global _handle
    if _handle is not None:
        bpy.utils.unregister_cli_command(_handle)
        _handle = None
