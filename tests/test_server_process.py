"""The real server as a subprocess on a free loopback port, driven by the add-on's own stdlib client; the same again
for the Ray Serve application (`python -m server --ray`): the add-on only changes its URL."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from conftest import TOKEN
from helpers import SIZE, gradient_frames, tiny_spec
from PIL import Image

from backend import launcher
from backend.client import Client, ServerError


@pytest.fixture(scope="module", params=["process", "ray"])
def served(request):
    return request.getfixturevalue("tiny_server" if request.param == "process" else "ray_server")


def test_subprocess_serves_a_whole_job(served):
    client = Client(served.url, token=TOKEN)
    assert client.health()["status"] == "ok"
    job = client.submit(tiny_spec(controlnets=[{"kind": "normal"}]), {"normal": gradient_frames(4)})
    kinds, frames = [], {}
    for _, kind, data in client.events(job):
        kinds.append(kind)
        if kind == "frame":
            frames[data["index"]] = Image.open(io.BytesIO(client.fetch(data["url"])))
    assert kinds[0] == "queued" and kinds[-1] == "done" and kinds.count("step") == 3
    assert sorted(frames) == [0, 1, 2, 3] and all(f.size == (SIZE, SIZE) for f in frames.values())


def test_every_route_needs_the_token(served):
    anonymous = Client(served.url)
    for call in (anonymous.health, anonymous.models, lambda: anonymous.submit(tiny_spec())):
        with pytest.raises(ServerError) as exc:
            call()
        assert exc.value.status == 401
    with pytest.raises(ServerError) as exc:
        Client(served.url, token="wrong").health()
    assert exc.value.status == 401


def test_the_addons_server_url_preference_reaches_it(served):
    from backend import server_control

    assert server_control.probe(served.url, TOKEN)[0] == "ours"
    assert server_control.probe(served.url, None)[0] == "locked"
    assert server_control.client(served.url + "/", 0, TOKEN).health()["status"] == "ok"


def test_client_errors_come_back_readable(served):
    client = Client(served.url, token=TOKEN)
    with pytest.raises(ServerError) as exc:
        client.submit(tiny_spec(width=100))
    assert exc.value.status == 422 and "width" in str(exc.value) and "multiple of 8" in str(exc.value)
    assert client.health()["status"] == "ok"


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(ServerError) as exc:
        Client("http://127.0.0.1:9", timeout=2).health()
    assert exc.value.status == 0 and "cannot reach" in str(exc.value)


def test_non_loopback_host_requires_a_token():
    r = subprocess.run(
        [sys.executable, "-m", "server", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=launcher.EXTENSION_ROOT,
    )
    assert r.returncode != 0 and "--token" in r.stderr
