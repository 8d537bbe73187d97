"""The server as a hostile or careless client meets it, in-process on the tiny models: web pages cannot drive it,
every mistake is a 4xx naming what to fix, a bug is a 500 with an error id in server.log, a full disk leaves
nothing behind, and the job folder is the record."""

from __future__ import annotations

import errno
import io
import json
import os
import struct
import time
import zlib

import pytest
from fastapi.testclient import TestClient
from helpers import SIZE, gradient_frames, multipart, read_events, tiny_spec

from server.api import Settings, create_app
from server.loaders import ModelConfig, ModelEntry

BASE = "http://127.0.0.1:7860"


@pytest.fixture(scope="module")
def app_client(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("hardened")
    settings = Settings(
        models=ModelConfig.load(tiny_models / "models.toml"),
        data_dir=root / "jobs",
        log_dir=root,
        max_upload_mb=4,
        token="tok",
    )
    app = create_app(settings)
    with TestClient(
        app, base_url=BASE, raise_server_exceptions=False, headers={"Authorization": "Bearer tok"}
    ) as client:
        client.app_state = app.state
        client.root = root
        yield client


def submit(client, spec, headers=None, **guides):
    if not guides:
        return client.post("/jobs", json=spec, headers=headers)
    data, files = multipart(spec, **guides)
    return client.post("/jobs", data=data, files=files, headers=headers)


def fields(r) -> list[str]:
    return [d["field"] for d in r.json()["detail"]]


def png_header(width: int, height: int) -> bytes:
    """A PNG that is only its signature and header: it declares a size and holds no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


# --- only the add-on and the clients it trusts drive the server ---------------------------------------------


def test_a_foreign_origin_is_refused_and_the_same_origin_is_not(app_client):
    for origin in ("http://evil.example", "null", "http://localhost:3000", "https://127.0.0.1:7860"):
        r = app_client.post("/release", headers={"Origin": origin})
        assert r.status_code == 403 and "web pages" in r.json()["detail"], origin
        assert app_client.get("/health", headers={"Origin": origin}).status_code == 403
    assert submit(app_client, tiny_spec(), headers={"Origin": "http://evil.example"}).status_code == 403
    assert app_client.get("/health", headers={"Origin": BASE}).status_code == 200
    assert app_client.get("/health", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403


def test_form_posts_and_text_plain_bodies_are_refused(app_client):
    # What an HTML <form> can send without asking: urlencoded, multipart to other routes, text/plain.
    r = app_client.post("/jobs", data={"spec": json.dumps(tiny_spec())})
    assert r.status_code == 415
    assert app_client.post("/release", files={"x": ("a", b"1")}).status_code == 415
    body = json.dumps(tiny_spec()).encode()
    for route in ("/plan", "/pose/draw", "/jobs"):
        r = app_client.post(route, content=body, headers={"Content-Type": "text/plain"})
        assert r.status_code == 415, route
    r = app_client.post("/plan", content=body, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    assert not app_client.app_state.queue._jobs


def test_a_rebinding_host_is_refused(app_client):
    job_id, _ = run_to_end(app_client, tiny_spec(steps=1, frames=2))
    for path in ("/health", f"/jobs/{job_id}", f"/jobs/{job_id}/frames/0", "/models"):
        r = app_client.get(path, headers={"Host": "evil.example"})
        assert r.status_code == 421 and "evil.example" in r.json()["detail"], path
    for host in ("localhost:7860", "127.0.0.1", "[::1]:7860"):
        assert app_client.get("/health", headers={"Host": host}).status_code == 200, host


def test_docs_follow_the_token_rule(app_client):
    for path in ("/docs", "/redoc", "/openapi.json", "/health"):
        assert app_client.get(path, headers={"Authorization": ""}).status_code == 401, path
        assert app_client.get(path).status_code == 200, path


def test_answers_show_no_absolute_paths(app_client, tiny_models):
    root = str(tiny_models)
    models = app_client.get("/models")
    assert models.status_code == 200 and root not in models.text
    assert any(m["source"].endswith((".safetensors", ".ckpt")) or m["source"] for m in models.json()["base"])
    plan = app_client.post("/plan", json=tiny_spec(controlnets=[{"kind": "depth"}]))
    assert plan.status_code == 200 and root not in plan.text and str(app_client.root) not in plan.text
    job_id, _ = run_to_end(app_client, tiny_spec(steps=1, frames=2))
    manifest = app_client.get(f"/jobs/{job_id}/manifest")
    assert manifest.status_code == 200 and root not in manifest.text and str(app_client.root) not in manifest.text


def test_every_route_declares_its_request_body(app_client):
    schema = app_client.get("/openapi.json").json()
    assert set(schema["paths"]["/jobs"]["post"]["requestBody"]["content"]) == {
        "application/json",
        "multipart/form-data",
    }
    for path in ("/plan", "/pose/draw"):
        assert "application/json" in schema["paths"][path]["post"]["requestBody"]["content"], path
    assert "JobSpec" in schema["components"]["schemas"]


# --- every client mistake is a 4xx naming the field ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, field",
    [
        ("[" * 5000 + "]" * 5000, "spec"),
        (json.dumps(tiny_spec(guidance=1)).replace('"guidance": 1', '"guidance": 1e400'), "spec"),
        (json.dumps(tiny_spec(guidance=1)).replace('"guidance": 1', '"guidance": NaN'), "spec"),
        (json.dumps(tiny_spec(guidance=1)).replace('"guidance": 1', '"guidance": Infinity'), "spec"),
        (json.dumps(tiny_spec(seed=1)).replace('"seed": 1', '"seed": ' + "9" * 5000), "spec"),
        (json.dumps(tiny_spec(prompt="x")).replace('"x"', '"\\ud800 a lone surrogate"'), "prompt"),
        (json.dumps(tiny_spec(sparsectrl={"model": 7, "keyframes": [0]}, motion_module="v3")), "sparsectrl.model"),
        (json.dumps(tiny_spec(controlnets=[{"kind": "depth", "model": ["x"]}])), "controlnets[0].model"),
        ('{"prompt": "' + "x" * 30_000 + '"}', "prompt"),
    ],
)
def test_malformed_specs_are_422_on_jobs_and_plan(app_client, raw, field):
    for route in ("/jobs", "/plan"):
        r = app_client.post(route, content=raw.encode(), headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and field in fields(r), (route, r.text)


@pytest.mark.parametrize(
    "body",
    [
        '{"width": 64, "height": 64, "people": [{"pose_keypoints_2d": [1e400, 1, 1]}]}',
        '{"width": 64, "height": 64, "people": [{"pose_keypoints_2d": [NaN, 1, 1]}]}',
        '{"width": 1e400, "height": 64, "people": []}',
        '{"width": 64, "height": 64, "people": [{"pose_keypoints_2d": ' + "[" * 3000 + "]" * 3000 + "}]}",
        '{"width": 64, "height": 64, "people": "x", "extra": 1}',
    ],
)
def test_bad_pose_draw_bodies_are_422(app_client, body):
    r = app_client.post("/pose/draw", content=body.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text


def test_guide_form_parts_must_be_png_files_of_the_job_size(app_client):
    spec = tiny_spec(controlnets=[{"kind": "depth"}])
    frames = gradient_frames(4)
    # a guide sent as a plain text field
    r = app_client.post(
        "/jobs",
        data={"spec": json.dumps(spec), "depth": "not a file"},
        files=[("depth", (f"{i}.png", f)) for i, f in enumerate(frames)],
    )
    assert r.status_code == 422 and "depth" in fields(r)
    # a header declaring 30000x30000: refused from the header, before any decoding
    r = submit(app_client, spec, depth=frames[:3] + [png_header(30000, 30000)])
    assert r.status_code == 422 and fields(r) == ["depth[3]"] and "pixels" in r.text
    # a JPEG (or anything not PNG) is refused, not decoded leniently
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (SIZE, SIZE)).save(buf, format="JPEG")
    r = submit(app_client, spec, depth=frames[:3] + [buf.getvalue()])
    assert r.status_code == 422 and fields(r) == ["depth[3]"] and "PNG" in r.text
    # a right header on a truncated body is found by the decode
    r = submit(app_client, spec, depth=frames[:3] + [frames[3][:60]])
    assert r.status_code == 422 and fields(r) == ["depth[3]"]
    # an unknown form field is named
    r = app_client.post(
        "/jobs", data={"spec": json.dumps(tiny_spec()), "dpeth": "1"}, files=[("depth", ("a.png", frames[0]))]
    )
    assert r.status_code == 422 and "dpeth" in fields(r)


def test_bad_last_event_id_is_422(app_client):
    job_id, _ = run_to_end(app_client, tiny_spec(steps=1, frames=2))
    for value in ("abc", "-1", "²".encode(), "9" * 40, "1.5"):
        r = app_client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": value})
        assert r.status_code == 422 and fields(r) == ["Last-Event-ID"], value


@pytest.fixture
def broken_motion_modules(app_client, tmp_path):
    entries = app_client.app_state.settings.models.entries["motion_module"]
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    good = entries["v2-original"].source
    truncated = tmp_path / "truncated.ckpt"
    with open(good, "rb") as f:
        truncated.write_bytes(f.read(4096))
    pickle = tmp_path / "corrupt.ckpt"
    pickle.write_bytes(b"PK\x03\x04 not a zip")
    added = {}
    for path in (garbage, truncated, pickle):
        added[path.stem] = ModelEntry("motion_module", path.stem, str(path), None)
    entries.update(added)
    yield added
    for name in added:
        entries.pop(name)


def test_broken_motion_module_files_are_409_naming_the_file(app_client, broken_motion_modules):
    for name, entry in broken_motion_modules.items():
        for route in ("/plan", "/jobs"):
            r = app_client.post(route, json=tiny_spec(motion_module=name))
            assert r.status_code == 409, (route, r.text)
            detail = r.json()["detail"]
            assert os.path.basename(entry.source) in detail["message"] and detail["name"] == name
            assert os.path.dirname(entry.source) not in r.text


# --- a bug is a 500 with an error id in the log ------------------------------------------------------------


def test_an_unexpected_failure_is_500_with_an_error_id_in_the_log(app_client, monkeypatch):
    import server.api.plan as plan_route

    def broken(*_args):
        raise RuntimeError("a bug in the planner")

    monkeypatch.setattr(plan_route, "plan", broken)
    r = app_client.post("/plan", json=tiny_spec())
    assert r.status_code == 500
    error_id = r.json()["error_id"]
    assert error_id in r.json()["detail"] and "a bug in the planner" not in r.text
    log = (app_client.root / "server.log").read_text()
    assert f"error {error_id}: POST /plan: RuntimeError: a bug in the planner" in log
    assert "Traceback (most recent call last)" in log.split(f"error {error_id}")[1]
    app_client.post("/plan", content=b"x", headers={"Content-Type": "text/plain"})
    assert "POST /plan -> 415" in (app_client.root / "server.log").read_text()


def test_a_full_disk_fails_the_submission_cleanly(app_client, monkeypatch):
    """ENOSPC from the real write call, for files under the data folder only, after a few guides were written."""
    data_dir = str(app_client.app_state.queue.data_dir)
    real_write, written = os.write, []

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(data_dir):
            written.append(fd)
            if len(written) > 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    before = set(os.listdir(data_dir))
    monkeypatch.setattr(os, "write", write)
    r = submit(app_client, tiny_spec(controlnets=[{"kind": "depth"}]), depth=gradient_frames(4))
    monkeypatch.undo()
    assert r.status_code == 507 and "disk" in r.json()["detail"] and len(written) == 3
    assert set(os.listdir(data_dir)) == before, "no orphan job folder"
    assert not [p for p in os.popen(f"find {data_dir} -name '*.tmp'").read().split()]
    assert "disk full" in (app_client.root / "server.log").read_text()
    _, events = run_to_end(app_client, tiny_spec(steps=1, frames=2))
    assert events[-1][1] == "done"


# --- the job folder is the record ---------------------------------------------------------------------------


def run_to_end(client, spec, **guides):
    r = submit(client, spec, **guides)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    with client.stream("GET", f"/jobs/{job_id}/events") as events:
        return job_id, read_events(events)


def test_queued_jobs_wait_on_disk_with_a_queued_manifest(app_client):
    queue = app_client.app_state.queue
    first = submit(app_client, tiny_spec(steps=40, frames=8)).json()["id"]
    second = submit(app_client, tiny_spec(controlnets=[{"kind": "depth"}]), depth=gradient_frames(4)).json()["id"]
    waiting = queue.get(second)
    assert waiting.state == "queued" and waiting._guides is None, "no decoded guides held while queued"
    manifest = app_client.get(f"/jobs/{second}/manifest").json()
    assert manifest["status"] == "queued" and manifest["guides"] == {"depth": 4}
    assert sorted(p.name for p in (waiting.folder / "guides").iterdir()) == [f"depth_{i:04d}.png" for i in range(1, 5)]
    app_client.delete(f"/jobs/{first}")
    with app_client.stream("GET", f"/jobs/{second}/events") as events:
        assert read_events(events)[-1][1] == "done"
    assert app_client.get(f"/jobs/{first}/manifest").json()["status"] == "cancelled"


def test_a_finished_stream_ends_also_when_resumed_after_its_last_event(app_client):
    job_id, events = run_to_end(app_client, tiny_spec(steps=1, frames=2))
    last = events[-1][0]
    with app_client.stream("GET", f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(last)}) as r:
        assert read_events(r) == []
    with app_client.stream("GET", f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(last - 1)}) as r:
        assert read_events(r) == events[-1:]


def test_history_is_bounded_and_older_jobs_are_served_from_disk(app_client, monkeypatch):
    queue = app_client.app_state.queue
    monkeypatch.setattr(queue, "_history", 1)
    old, _ = run_to_end(app_client, tiny_spec(steps=1, frames=2))
    run_to_end(app_client, tiny_spec(steps=1, frames=2, seed=3))
    deadline = time.monotonic() + 30  # the worker retires a job just after its final event went out
    while (old in queue._done or len(queue._done) != 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert old not in queue._done and len(queue._done) == 1
    status = app_client.get(f"/jobs/{old}").json()
    assert status["state"] == "done" and status["frames_ready"] == [0, 1]
    assert app_client.get(f"/jobs/{old}/frames/1").status_code == 200
    with app_client.stream("GET", f"/jobs/{old}/events", headers={"Last-Event-ID": "7"}) as r:
        replay = read_events(r)
    assert [(seq, kind) for seq, kind, _ in replay] == [(8, "done")]
    assert app_client.get("/jobs/..%2F..%2Fetc").status_code == 404
