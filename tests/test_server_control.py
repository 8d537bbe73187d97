"""Starting the local server without asking: our server told from another program on the port, a leftover server
from a crashed Blender adopted, a Python without the server's packages named as such. Real processes, no bpy."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import venv
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from backend import launcher, server_control
from backend.client import Client, ServerError
from server.protocol import DEFAULT_PORT

SERVER_PYTHON = os.environ.get("MARIONETTE_SERVER_PYTHON") or sys.executable


def test_the_default_port_is_none_of_the_common_local_ai_tools():
    assert DEFAULT_PORT not in (7860, 7861, 8188, 9090, 11434, 5000, 8000, 8080)


class _Plain(BaseHTTPRequestHandler):
    """http.server with no GET handler: it answers 501, as AUTOMATIC1111's port did in the bug report."""

    def log_message(self, *args):
        pass


class _OtherJSON(_Plain):
    def do_GET(self):
        data = json.dumps({"status": "ok", "models": ["llama3"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(params=["501", "other json"])
def foreign(request):
    httpd = HTTPServer(("127.0.0.1", 0), _Plain if request.param == "501" else _OtherJSON)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield request.param, httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_another_program_on_the_port_is_named_and_nothing_starts(foreign, tmp_path):
    kind, port = foreign
    server_control.forget()
    with pytest.raises(server_control.PortTaken) as e:
        server_control.ensure(SERVER_PYTHON, port, "", "", tmp_path)
    message = str(e.value)
    assert f"port {port} is used by another program" in message and "choose another port" in message
    assert ("HTTP 501" if kind == "501" else '"llama3"') in message
    assert not server_control.log_path(tmp_path).exists(), "no server was started"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_environment_and_a_python_without_packages_say_what_to_do(tmp_path):
    server_control.forget()
    with pytest.raises(launcher.LaunchError, match="press Install Server"):
        server_control.ensure("", _free_port(), "", "", tmp_path)
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    python = str(bare / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    with pytest.raises(launcher.LaunchError) as e:
        server_control.ensure(python, _free_port(), "", "", tmp_path / "data")
    assert re.search(r"lacks the server's packages \(no module '\w+'\)", str(e.value)), str(e.value)
    assert "Install Server" in str(e.value) and "Traceback" not in str(e.value)


def test_a_leftover_server_is_adopted_not_started_twice(tiny_models, tmp_path):
    server_control.forget()
    said = []
    first = server_control.ensure(
        SERVER_PYTHON, 0, str(tiny_models / "models.toml"), "", tmp_path, on_status=said.append
    )
    try:
        assert said[0].startswith("Starting server") and said[-1].startswith("Server started")
        state = json.loads((tmp_path / "server.json").read_text())
        assert state["pid"] == first.process.process.pid and state["token"] == first.token
        assert oct((tmp_path / "server.json").stat().st_mode & 0o777) == "0o600"
        with pytest.raises(ServerError) as e:  # the fresh token is required
            Client(first.url).models()
        assert e.value.status == 401

        server_control.forget()  # Blender crashed: the server process lives on
        said.clear()
        adopted = server_control.ensure(
            SERVER_PYTHON, 0, str(tiny_models / "models.toml"), "", tmp_path, on_status=said.append
        )
        assert adopted.process is None and (adopted.pid, adopted.url) == (state["pid"], first.url)
        assert said == [f"Using the server already running at {first.url} (cpu)"]
        health = server_control.client("", 0, "").health()
        assert health["service"] == "marionette"

        server_control.stop(tmp_path)  # Stop works on an adopted server too
        first.process.process.wait(timeout=30)
        assert not (tmp_path / "server.json").exists()
    finally:
        first.process.stop()
    assert server_control.probe(first.url, first.token)[0] == "none"


def test_a_stale_record_is_dropped(tmp_path):
    (tmp_path / "server.json").write_text(
        json.dumps({"url": f"http://127.0.0.1:{_free_port()}", "token": "x", "pid": 999999})
    )
    server_control.forget()
    with pytest.raises(launcher.LaunchError, match="press Install Server"):
        server_control.ensure("", _free_port(), "", "", tmp_path)
    assert not (tmp_path / "server.json").exists()
