"""marionette.install_server / install_cancel: the server environment from inside Blender."""

import functools
import platform
import shutil
import subprocess
from pathlib import Path

import bpy

from .. import preferences
from ..backend import install_plan, installer

_health: tuple[str, str] | None = None  # (state, line) of the environment, refreshed after each install


def env_dir() -> Path:
    return Path(bpy.utils.extension_path_user(preferences.PACKAGE, create=True)) / "server-env"


def log_path() -> Path:
    return Path(bpy.utils.extension_path_user(preferences.PACKAGE, create=True)) / "install.log"


@functools.cache
def has_nvidia_gpu() -> bool:
    """Whether `nvidia-smi -L` lists a GPU (the driver is what the CUDA build of torch needs)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return False
    try:
        out = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def torch_choice(prefs) -> install_plan.TorchChoice:
    return install_plan.choose_torch(platform.system(), platform.machine(), has_nvidia_gpu(), prefs.torch_build.lower())


def env_health(refresh: bool = False) -> tuple[str, str]:
    global _health
    if _health is None or refresh:
        _health = installer.health(env_dir())
    return _health


def installed_python() -> str:
    """The environment's Python when the environment is healthy, else ""."""
    return str(installer.env_python(env_dir())) if env_health()[0] == "healthy" else ""


def _redraw():
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


def _finished(context, job: installer.Installer):
    env_health(refresh=True)
    prefs = preferences.get(context)
    if job.state == "done":
        python = str(installer.env_python(job.env_dir))
        if prefs.server_python != python:
            prefs.server_python = python  # Server Python points at the new environment by itself
        prefs.install_status = f"{job.message} ({job.seconds:.0f} s)"
    else:
        prefs.install_status = job.message


def _poll():
    job = installer.current
    _redraw()
    if job is None or job.state == "running":
        return 0.5
    _finished(bpy.context, job)
    _redraw()
    return None


class MARIONETTE_OT_install_server(bpy.types.Operator):
    bl_idname = "marionette.install_server"
    bl_label = "Install Server"
    bl_description = (
        "Make the server's private Python environment in the extension's user folder and install "
        "its pinned packages (torch for this machine's GPU); a second press repairs or updates it"
    )

    def execute(self, context):
        prefs = preferences.get(context)
        if installer.current is not None and installer.current.state == "running":
            self.report({"WARNING"}, "The server is being installed: wait or press Cancel")
            return {"CANCELLED"}
        try:
            choice = torch_choice(prefs)
        except ValueError as e:
            self.report({"ERROR"}, f"{e}; choose another torch build in the preferences")
            return {"CANCELLED"}
        state, line = env_health(refresh=True)
        if state == "healthy":
            prefs.install_status = f"Nothing to do: the server environment is {line}"
            python = str(installer.env_python(env_dir()))
            if prefs.server_python != python:
                prefs.server_python = python
            self.report({"INFO"}, prefs.install_status)
            return {"FINISHED"}
        job = installer.current = installer.Installer(
            env_dir(), log_path(), choice, python=bpy.path.abspath(prefs.install_python) or None
        )
        if bpy.app.background:  # no event loop to follow a thread: run to the end here
            job.run()
            _finished(context, job)
            if job.state != "done":
                self.report({"ERROR"}, job.message)
                return {"CANCELLED"}
            self.report({"INFO"}, prefs.install_status)
            return {"FINISHED"}
        job.start()
        prefs.install_status = f"Installing (torch: {choice.build}, {choice.reason})"
        bpy.app.timers.register(_poll, first_interval=0.5)
        return {"FINISHED"}


class MARIONETTE_OT_install_cancel(bpy.types.Operator):
    bl_idname = "marionette.install_cancel"
    bl_label = "Cancel Install"
    bl_description = "Stop the install; the next Install Server press finishes it"

    def execute(self, context):
        job = installer.current
        if job is None or job.state != "running":
            return {"CANCELLED"}
        job.cancel()
        return {"FINISHED"}


CLASSES = (MARIONETTE_OT_install_server, MARIONETTE_OT_install_cancel)
