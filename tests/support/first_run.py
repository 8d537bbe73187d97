"""What an artist does on a fresh Blender, run in its own process (a fresh Blender user folder from
$BLENDER_USER_RESOURCES): build and install the extension zip, press Install Server and Cancel, press it again
(it finishes the install), once more (nothing to do), then Generate.

    python tests/support/first_run.py OUT_JSON MODELS_TOML PORT

Writes OUT_JSON with what happened (timings, statuses, frames) for tests/test_first_run.py to check.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import bpy

from cli import extension


def scene(out: Path):
    bpy.ops.wm.read_homefile(use_empty=True)
    s = bpy.context.scene
    s.render.resolution_x = s.render.resolution_y = 64
    s.render.resolution_percentage = 100
    s.frame_start, s.frame_end = 1, 4
    bpy.ops.mesh.primitive_plane_add(size=20)
    bpy.ops.mesh.primitive_cube_add(size=1, location=(0, 0, 0.5))
    bpy.ops.object.camera_add(location=(0, -6, 2.5), rotation=(1.2, 0, 0))
    s.camera = bpy.context.object
    s.marionette.output_dir = str(out)
    s.marionette.steps = 2
    s.marionette.use_depth = True


def main(out_json: str, models_toml: str, port: str):
    report: dict = {}
    zip_path = extension.build(Path(out_json).parent / "dist")
    report["zip"] = zip_path.name
    extension.install(zip_path)
    package = sys.modules[extension.PACKAGE]
    prefs = extension.preferences()
    report["default_python"] = prefs.server_python
    # The one thing the test changes: the torch build the project's environment pins, so pip's local files and
    # cache serve the same wheel instead of a second multi-GB download.
    prefs.torch_build = "REGISTRY"
    prefs.models_file, prefs.port = models_toml, int(port)

    # First press, then Cancel while pip installs torch: nothing half made may count as installed.
    installer = sys.modules[f"{extension.PACKAGE}.backend.installer"]

    def press_cancel():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            job = installer.current
            if job is not None and job.message.startswith("Installing torch"):
                time.sleep(2)
                job.cancel()
                return
            time.sleep(0.05)

    threading.Thread(target=press_cancel, daemon=True).start()
    try:
        report["cancelled_result"] = sorted(bpy.ops.marionette.install_server())
    except RuntimeError as e:  # the operator reports an ERROR: bpy raises it in background mode
        report["cancelled_result"] = ["ERROR", str(e)]
    install = sys.modules[f"{extension.PACKAGE}.operators.install"]
    report["cancelled_health"] = install.env_health(refresh=True)[0]
    report["cancelled_python"] = prefs.server_python

    started = time.monotonic()
    report["install_result"] = sorted(bpy.ops.marionette.install_server())
    report["install_seconds"] = round(time.monotonic() - started, 1)
    report["install_status"] = prefs.install_status
    report["env_dir"] = str(install.env_dir())
    report["health"] = install.env_health(refresh=True)[0]
    report["marker"] = (install.env_dir() / "marionette-env.json").is_file()
    report["server_python"] = prefs.server_python

    started = time.monotonic()
    report["second_result"] = sorted(bpy.ops.marionette.install_server())
    report["second_seconds"] = round(time.monotonic() - started, 1)
    report["second_status"] = prefs.install_status

    scene(Path(out_json).parent / "frames")
    started = time.monotonic()
    try:
        report["generate_result"] = sorted(bpy.ops.marionette.generate())
    except RuntimeError as e:
        report["generate_result"] = ["ERROR", str(e)]
    report["generate_seconds"] = round(time.monotonic() - started, 1)
    runtime = bpy.context.window_manager.marionette
    report["status"], report["error"], report["server"] = runtime.status, runtime.error, runtime.server
    report["frames"] = sorted(p.name for p in Path(runtime.job_dir).glob("frame_*.png")) if runtime.job_dir else []
    server_control = sys.modules[f"{extension.PACKAGE}.backend.server_control"]
    health = server_control.client("", prefs.port, "").health()
    report["served_by"] = {
        "service": health["service"],
        "device": health["device"],
        "python": str(server_control._local.process.process.args[0])
        if server_control._local and server_control._local.process
        else None,
    }
    bpy.ops.marionette.server_stop()
    report["extension_root"] = str(Path(package.__file__).parent)
    Path(out_json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:4])
