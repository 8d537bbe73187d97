"""Where the add-on writes: job folders next to the .blend (or in the temp folder for an unsaved file)."""

import time
from pathlib import Path

import bpy


def output_root(settings) -> Path:
    path = settings.output_dir or "//marionette/"
    if path.startswith("//") and not bpy.data.filepath:
        return Path(bpy.app.tempdir or "/tmp") / "marionette"
    return Path(bpy.path.abspath(path))


def new_job_dir(settings) -> Path:
    root = output_root(settings)
    folder = root / time.strftime("%Y%m%d-%H%M%S")
    n = 1
    while folder.exists():
        n += 1
        folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{n}"
    folder.mkdir(parents=True)
    return folder


def server_data_dir() -> Path:
    try:
        return Path(bpy.utils.extension_path_user(__package__.rpartition(".")[0], path="server", create=True))
    except (AttributeError, ValueError):  # a legacy add-on install has no extension user folder
        return Path(bpy.app.tempdir or "/tmp") / "marionette-server"
