"""The one server the add-on talks to: one it started, one it adopted, or one already running at a URL. No bpy.

A local server gets a fresh random token (passed as $MARIONETTE_TOKEN) and its pid, port and token are recorded in
`server.json` in the extension's user folder, so a Blender that crashed and was restarted finds its server again
and adopts it instead of failing on the busy port. `/health` naming `"service": "marionette"` tells our server from
another program on the port.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import launcher
from .client import Client

SERVICE = "marionette"
STATE_FILE = "server.json"


class PortTaken(launcher.LaunchError):
    """The port answers, but not as a Marionette server this Blender can use."""


@dataclass
class Local:
    """A local server this add-on uses: started here (process) or adopted from server.json (pid only)."""

    url: str
    token: str
    pid: int
    process: launcher.ServerProcess | None = None
    model_roots: tuple[str, ...] | None = None  # the --model-root folders it was started with (None: unknown)

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.alive()
        try:
            os.kill(self.pid, 0)
            return True
        except OSError:
            return False


_local: Local | None = None
_starting: threading.Thread | None = None
_start_error: str | None = None
_status = ""


def url(server_url: str, port: int) -> str:
    if server_url:
        return server_url.rstrip("/")
    if _local is not None and _local.alive():
        return _local.url
    return f"http://127.0.0.1:{port}"


def client(server_url: str, port: int, token: str) -> Client:
    if not server_url and _local is not None and _local.alive():
        return Client(_local.url, _local.token)
    return Client(url(server_url, port), token or None)


def client_for(prefs) -> Client:
    """The client of the server the add-on preferences name (Server URL, else the local one on Port; Token)."""
    return client(prefs.server_url, prefs.port, prefs.token)


def log_path(data_dir: Path) -> Path:
    """What the server process prints (start-up failures included); its own `server.log` lies beside it."""
    return Path(data_dir) / "console.log"


def server_log_path(data_dir: Path) -> Path:
    """The server's `marionette` log (failed requests, jobs, tracebacks with error ids) once it has run."""
    return Path(data_dir) / "server.log"


def probe(base_url: str, token: str | None, timeout: float = 3.0) -> tuple[str, object]:
    """What answers at base_url: ("ours", health) | ("locked", None) (a Marionette server wanting another token) |
    ("foreign", what it said) | ("none", None)."""
    request = urllib.request.Request(base_url.rstrip("/") + "/health")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            body = r.read(4096)
    except urllib.error.HTTPError as e:
        text = e.read(4096).decode(errors="replace")
        if e.code == 401 and "bearer token" in text:
            return "locked", None
        return "foreign", f"it answered HTTP {e.code} {e.reason}"
    except (urllib.error.URLError, OSError):
        return "none", None
    try:
        health = json.loads(body)
    except ValueError:
        return "foreign", f"it answered /health with {body[:60]!r}"
    if isinstance(health, dict) and health.get("service") == SERVICE:
        return "ours", health
    return "foreign", f"it answered /health with {json.dumps(health)[:80]}"


def _read_state(data_dir: Path) -> dict | None:
    try:
        state = json.loads((Path(data_dir) / STATE_FILE).read_text())
        return state if isinstance(state, dict) and {"url", "token", "pid"} <= state.keys() else None
    except (OSError, ValueError):
        return None


def _write_state(data_dir: Path, local: Local):
    path = Path(data_dir) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {"url": local.url, "token": local.token, "pid": local.pid, "model_roots": local.model_roots}
    tmp.write_text(json.dumps(state))
    os.chmod(tmp, 0o600)  # the token is a password to the server
    os.replace(tmp, path)


def _clear_state(data_dir: Path):
    try:
        (Path(data_dir) / STATE_FILE).unlink()
    except OSError:
        pass


def set_status(text: str):
    global _status
    _status = text


def status() -> str:
    return _status


def ensure(
    python: str,
    port: int,
    models_file: str,
    extra_args: str,
    data_dir: Path,
    on_status=set_status,
    timeout: float = 300.0,
    model_roots=(),
) -> Local:
    """A healthy local server of ours: the one already used, a leftover one from server.json, or a new one.

    Raises PortTaken when another program holds the port and LaunchError when the server cannot start; both name
    what to do.
    """
    global _local
    if _local is not None and _local.alive():
        return _local
    data_dir = Path(data_dir)
    state = _read_state(data_dir)
    if state is not None:
        found, health = probe(state["url"], state["token"])
        if found == "ours":
            roots = state.get("model_roots")  # absent in the server.json of an older version: unknown
            roots = None if roots is None else tuple(roots)
            _local = Local(state["url"], state["token"], int(state["pid"]), None, roots)
            on_status(f"Using the server already running at {_local.url} ({health.get('device')})")
            return _local
        _clear_state(data_dir)
    if port:
        where = f"http://127.0.0.1:{port}"
        found, said = probe(where, None)
        if found == "foreign":
            raise PortTaken(
                f"port {port} is used by another program ({said}); choose another port in "
                f"Preferences > Add-ons > Marionette"
            )
        if found == "locked":
            raise PortTaken(
                f"port {port} is used by a Marionette server this Blender did not start (it wants a "
                f"token): stop it, enter its Server URL and Token, or choose another port in the "
                f"preferences"
            )
        if found == "ours":  # started by hand without a token
            _local = Local(where, "", 0)
            on_status(f"Using the server already running at {where}")
            return _local
    if not python:
        raise launcher.LaunchError(
            "no server environment yet: press Install Server in Preferences > Add-ons > "
            "Marionette (or set Server Python to a Python that has the server's packages)"
        )
    token = secrets.token_urlsafe(24)
    args = ["--port", str(port), "--data", str(data_dir)]
    if models_file:
        args += ["--models", models_file]
    for root in model_roots:
        args += ["--model-root", root]
    args += shlex.split(extra_args)
    on_status("Starting server (loading torch and diffusers)")
    started = time.monotonic()
    process = launcher.start(python, args, log=log_path(data_dir), timeout=timeout, env={"MARIONETTE_TOKEN": token})
    _local = Local(process.url, token, process.process.pid, process, tuple(model_roots))
    _write_state(data_dir, _local)
    on_status(f"Server started in {time.monotonic() - started:.0f} s at {_local.url}")
    return _local


def start(
    python: str, port: int, models_file: str, extra_args: str, data_dir: Path, wait: bool, model_roots=()
) -> None:
    """`ensure` in a thread (wait=False) or here; `state()` and `start_error()` tell how it went."""
    global _starting, _start_error

    def run():
        global _start_error
        try:
            ensure(python, port, models_file, extra_args, data_dir, model_roots=model_roots)
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
    if _local is not None:
        return "running" if _local.alive() else "exited"
    return "stopped"


def start_error() -> str | None:
    return _start_error


def started_roots() -> tuple[str, ...] | None:
    """The model folders the running local server was started with; None when none of ours runs."""
    return _local.model_roots if _local is not None and _local.alive() else None


def forget():
    """Drop the in-memory handle without stopping anything (what a Blender crash does)."""
    global _local
    _local = None


def stop(data_dir: Path | None = None):
    """Stop the local server this add-on started or adopted."""
    global _local
    local, _local = _local, None
    if local is None:
        return
    if local.process is not None:
        local.process.stop()
    elif local.pid and local.alive():
        os.kill(local.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while local.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
    if data_dir is not None:
        _clear_state(data_dir)
