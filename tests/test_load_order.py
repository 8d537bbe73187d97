"""An OpenGL render (Workbench) and then the server's stack in one process, as a pytest session that mixes
Blender-side and server-side tests has it: the plugin loads triton first, so its LLVM never binds to the LLVM of
Mesa's software driver (tests/marionette_pytest.py, `load_triton_first`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys
sys.path[:0] = ["tests", "."]
import marionette_pytest  # what pytest loads first
import bpy
scene = bpy.context.scene
scene.render.engine = "BLENDER_WORKBENCH"
scene.render.resolution_x = scene.render.resolution_y = 16
bpy.ops.render.render()
import diffusers  # torch._dynamo, then triton: a segfault here when triton loads after the GL driver
print("imported", diffusers.__version__)
"""


def test_the_server_stack_imports_after_an_opengl_render():
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-4000:]
