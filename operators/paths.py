"""Where the add-on writes: job folders under the Output folder, never in Blender's temp folder.

A path relative to the .blend ("//marionette/", "//renders/ai/") is kept relative to it once the file is saved.
For an unsaved file it goes under the persistent folder of the preferences (`output_folder`, default
~/Marionette), subfolders kept, so results survive quitting Blender; images loaded from there keep absolute paths,
which stay valid after Save As. Job folders are named here but made only once something is written into them.
"""

import os
import time
from pathlib import Path

import bpy

DEFAULT_PERSISTENT = Path.home() / "Marionette"


def persistent_root(context=None) -> Path:
    """The folder for results of unsaved files (preferences `output_folder`, owned by the preferences module)."""
    try:
        prefs = (context or bpy.context).preferences.addons[__package__.rpartition(".")[0]].preferences
    except (KeyError, AttributeError):
        prefs = None
    folder = getattr(prefs, "output_folder", "") or str(DEFAULT_PERSISTENT)
    return Path(os.path.expanduser(bpy.path.abspath(folder)))


def output_root(settings) -> Path:
    path = settings.output_dir or "//marionette/"
    if path.startswith("//") and not bpy.data.filepath:
        return persistent_root() / path[2:].replace("\\", "/").strip("/")
    return Path(bpy.path.abspath(path))


def new_job_dir(settings) -> Path:
    """A fresh job folder's path (not created: a refused job leaves nothing behind)."""
    root = output_root(settings)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, n = root / stamp, 1
    while folder.exists():
        n += 1
        folder = root / f"{stamp}-{n}"
    return folder


def remove_if_empty(folder: Path):
    """Remove `folder` and its empty parents up to the output root when nothing was written (a cancelled job)."""
    for path in (folder / "guides", folder):
        try:
            path.rmdir()
        except OSError:
            pass


def server_data_dir() -> Path:
    try:
        return Path(bpy.utils.extension_path_user(__package__.rpartition(".")[0], path="server", create=True))
    except (AttributeError, ValueError):  # a legacy add-on install has no extension user folder
        return Path(bpy.app.tempdir or "/tmp") / "marionette-server"


def catalog_file() -> Path:
    """Where the server's model names are remembered between sessions."""
    return server_data_dir().parent / "models.json"
