"""The one server the add-on talks to: one it started, or one already running at a URL. No bpy."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

from . import launcher
from .client import Client

_process: launcher.ServerProcess | None = None
_starting: threading.Thread | None = None
_start_error: str | None = None


def url(server_url: str, port: int) -> str:
    if server_url:
        return server_url.rstrip("/")
    if _process is not None and _process.alive():
        return _process.url
    return f"http://127.0.0.1:{port}"


def client(server_url: str, port: int, token: str) -> Client:
    return Client(url(server_url, port), token or None)


def log_path(data_dir: Path) -> Path:
    return Path(data_dir) / "server.log"


def start(python: str, port: int, token: str, models_file: str, extra_args: str, data_dir: Path,
          wait: bool) -> None:
    """Start `python -m server`. With wait=False it starts in a thread; `state()` tells how it went."""
    global _starting, _start_error
    if _process is not None and _process.alive():
        return
    args = ["--port", str(port), "--data", str(data_dir)]
    if token:
        args += ["--token", token]
    if models_file:
        args += ["--models", models_file]
    args += shlex.split(extra_args)

    def run():
        global _process, _start_error
        try:
            _process = launcher.start(python or None, args, log=log_path(data_dir))
            _start_error = None
        except (launcher.LaunchError, OSError) as e:
            _start_error = str(e)

    _start_error = None
    if wait:
        run()
    else:
        _starting = threading.Thread(target=run, name="marionette-server-start", daemon=True)
        _starting.start()


def state() -> str:
    if _starting is not None and _starting.is_alive():
        return "starting"
    if _start_error:
        return "failed"
    if _process is not None:
        return "running" if _process.alive() else "exited"
    return "stopped"


def start_error() -> str | None:
    return _start_error


def stop():
    global _process
    if _process is not None:
        _process.stop()
        _process = None
