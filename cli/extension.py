"""Build the extension with Blender's own tool and install it into the running Blender, as a user would."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "bl_ext.user_default.marionette"


def blender_ext_tool() -> Path:
    return Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"


def build(out_dir: Path | None = None) -> Path:
    """The extension zip, built from this checkout by Blender's `blender_ext.py build`."""
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="marionette-ext-"))
    out_dir.mkdir(parents=True, exist_ok=True)  # Blender's tool does not make it ("Error creating archive")
    # bpy's Python is this interpreter; inside the Blender app sys.executable is Blender itself.
    python = sys.executable if "python" in Path(sys.executable).name else bpy.app.binary_path_python
    done = subprocess.run(
        [python, str(blender_ext_tool()), "build", "--source-dir", str(ROOT), "--output-dir", str(out_dir)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the extension failed:\n{done.stdout}{done.stderr}")
    (zip_path,) = out_dir.glob("marionette-*.zip")
    return zip_path


def install(zip_path: Path | None = None):
    """Install and enable the extension; returns its module."""
    zip_path = zip_path or build()
    if "blender_manifest.toml" not in zipfile.ZipFile(zip_path).namelist():
        raise RuntimeError(f"{zip_path} is not a Blender extension")
    result = bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True
    )
    if result != {"FINISHED"} or PACKAGE not in bpy.context.preferences.addons:
        raise RuntimeError(f"installing {zip_path} failed: {result}")
    return sys.modules[PACKAGE]


def preferences():
    return bpy.context.preferences.addons[PACKAGE].preferences
