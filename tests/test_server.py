"""The HTTP API on tiny models: submit, stream, fetch, cancel, queue, release, and every bad input; the battery runs
in-process and again against the same app served by Ray Serve (`python -m server --ray`, two generator replicas)."""

from __future__ import annotations

import io
import json
import time

import httpx
import numpy as np
import pytest
from conftest import TOKEN
from fastapi.testclient import TestClient
from helpers import SIZE, gradient_frames, multipart, png, read_events, tiny_spec
from PIL import Image

from server.api import Settings, create_app
from server.loaders import ModelConfig


@pytest.fixture(scope="module")
def local_server(tiny_models, tmp_path_factory):
    settings = Settings(
        models=ModelConfig.load(tiny_models / "models.toml"), data_dir=tmp_path_factory.mktemp("jobs"), max_upload_mb=4
    )
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1:7860") as client:
        client.app_state = app.state
        yield client


@pytest.fixture(scope="module", params=["in-process", "ray"])
def server(request):
    """The battery's server: the app in this process, then the Ray Serve application (tests that reach into the
    process, or that need its one worker, take `local_server`)."""
    if request.param == "in-process":
        yield request.getfixturevalue("local_server")
        return
    served = request.getfixturevalue("ray_server")
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        yield client


def submit(client, spec, **guides):
    if not guides:
        return client.post("/jobs", json=spec)
    data, files = multipart(spec, **guides)
    return client.post("/jobs", data=data, files=files)


def run_to_end(client, spec, **guides):
    r = submit(client, spec, **guides)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    with client.stream("GET", f"/jobs/{job_id}/events") as events:
        return job_id, read_events(events)


def test_health_and_models(server):
    h = server.get("/health").json()
    assert h["status"] == "ok" and h["device"] == "cpu" and "version" in h
    models = server.get("/models").json()
    assert "sd15" in {m["name"] for m in models["base"]}
    assert {"zoom_in", "pan_left"} <= {m["name"] for m in models["motion_lora"]}


def test_job_streams_events_in_order_and_every_frame(server):
    spec = tiny_spec(controlnets=[{"kind": "depth", "weight": 0.8}])
    job_id, events = run_to_end(server, spec, depth=gradient_frames(4))
    kinds = [k for _, k, _ in events]
    assert kinds[0] == "queued" and kinds[1] == "loading" and kinds[-1] == "done"
    assert kinds.count("step") == 3 and kinds.count("frame") == 4
    assert kinds.index("frame") > max(i for i, k in enumerate(kinds) if k == "step")
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    steps = [d for _, k, d in events if k == "step"]
    assert [s["i"] for s in steps] == [1, 2, 3] and all(s["n"] == 3 for s in steps)
    preview = server.get(steps[-1]["preview"])
    assert preview.status_code == 200 and Image.open(io.BytesIO(preview.content)).size == (2 * SIZE // 8,) * 2
    frames = [d for _, k, d in events if k == "frame"]
    assert sorted(f["index"] for f in frames) == [0, 1, 2, 3]
    for f in frames:
        r = server.get(f["url"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(r.content))
        assert image.size == (SIZE, SIZE) and image.mode == "RGB"
    status = server.get(f"/jobs/{job_id}").json()
    assert status["state"] == "done" and status["frames_ready"] == [0, 1, 2, 3] and status["position"] is None
    manifest = server.get(f"/jobs/{job_id}/manifest").json()
    assert manifest["spec"]["prompt"] == spec["prompt"] and manifest["seed"] == 7
    assert manifest["frames"] == [f"frame_{i:04d}.png" for i in range(1, 5)]
    assert manifest["plan"]["base"]["sha256"] and "diffusers" in manifest["versions"]
    assert manifest["motion_norm"] == "original"  # normalised as the original AnimateDiff (issue 16)


def test_same_seed_same_frames_and_second_job_loads_nothing(server):
    spec = tiny_spec(controlnets=[{"kind": "depth"}])
    guides = gradient_frames(4)
    a, _ = run_to_end(server, spec, depth=guides)
    b, events = run_to_end(server, spec, depth=guides)
    assert events[-1][2]["loaded"] == []
    for i in range(4):
        assert server.get(f"/jobs/{a}/frames/{i}").content == server.get(f"/jobs/{b}/frames/{i}").content


def test_changing_only_lora_weights_reloads_nothing(server):
    run_to_end(server, tiny_spec(motion_loras=[{"name": "zoom_in", "weight": 1.0}]))
    _, events = run_to_end(server, tiny_spec(motion_loras=[{"name": "zoom_in", "weight": 0.3}]))
    assert events[-1][1] == "done" and events[-1][2]["loaded"] == []


def test_cancel_mid_run_keeps_the_server_serving(server):
    r = submit(server, tiny_spec(steps=150, frames=8))
    job_id = r.json()["id"]
    with server.stream("GET", f"/jobs/{job_id}/events") as events:
        seen = []
        for _seq, kind, data in __import__("server.protocol", fromlist=["x"]).parse_events(events.iter_lines()):
            seen.append(kind)
            if kind == "step" and data["i"] == 2:
                assert server.delete(f"/jobs/{job_id}").status_code == 200
    assert seen[-1] == "cancelled"
    assert seen.count("step") <= 4, "cancel must take effect within a step"
    assert server.get(f"/jobs/{job_id}").json()["state"] == "cancelled"
    _, after = run_to_end(server, tiny_spec())
    assert after[-1][1] == "done"


def test_two_jobs_run_first_in_first_out(local_server):
    server = local_server
    first = submit(server, tiny_spec(steps=20)).json()["id"]
    second = submit(server, tiny_spec(seed=1)).json()["id"]
    assert server.get(f"/jobs/{second}").json()["position"] == 1
    with server.stream("GET", f"/jobs/{second}/events") as events:
        read_events(events)
    assert server.get(f"/jobs/{first}").json()["state"] == "done"
    m1 = json.loads((server.app_state.queue.get(first).folder / "manifest.json").read_text())
    m2 = json.loads((server.app_state.queue.get(second).folder / "manifest.json").read_text())
    assert m2["timings"]["started_at"] >= m1["timings"]["finished_at"]


def test_release_unloads_everything(server):
    run_to_end(server, tiny_spec())
    assert server.get("/health").json()["loaded"]
    r = server.post("/release")
    assert r.status_code == 200 and r.json()["loaded"] == []
    assert server.get("/health").json()["loaded"] == []
    _, events = run_to_end(server, tiny_spec())
    assert events[-1][1] == "done" and "base:sd15" in events[-1][2]["loaded"]


def test_plan_resolves_without_generating(server):
    r = server.post(
        "/plan",
        json=tiny_spec(
            motion_module="v3",
            motion_loras=[{"name": "pan_left", "weight": 0.5}],
            controlnets=[{"kind": "normal", "weight": 0.7}],
        ),
    )
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["motion_loras"] == [{"name": "pan_left", "weight": 0.5}]
    assert plan["controlnets"][0]["kind"] == "normal" and plan["controlnets"][0]["weight"] == 0.7
    assert plan["motion_module"]["version"] == "v3"
    assert any("v2" in n for n in plan["notes"])


# --- bad input: a clear error, never a 500, and the next job still runs ---------------------------------------


def assert_field(r, status, field):
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert any(d["field"] == field for d in detail), detail


UNKNOWN_NAMES = {
    "base": "sd99",
    "motion_module": "v9",
    "controlnets": [{"kind": "depth"}, {"kind": "normal", "model": "normal_v99"}],
    "loras": [{"name": "style"}, {"name": "nope"}],
    "motion_loras": [{"name": "spin", "weight": 1}],
    "sparsectrl": {"model": "scribble9", "keyframes": [0]},
    "references": [{"model": "ip_adapter_x"}],
    "vae": "vae_x",
}
UNKNOWN_FIELDS = {
    "base": ("base", "sd99", "sd15"),
    "motion_module": ("motion_module", "v9", "v3"),
    "controlnets[1].model": ("controlnet", "normal_v99", "normal"),
    "loras[1].name": ("lora", "nope", "style"),
    "motion_loras[0].name": ("motion_lora", "spin", "zoom_in"),
    "sparsectrl.model": ("sparsectrl", "scribble9", "rgb"),
    "references[0].model": ("ip_adapter", "ip_adapter_x", "ip_adapter"),
    "vae": ("vae", "vae_x", None),
}


def test_unknown_model_names_are_one_422_naming_each_field_and_the_known_names(server):
    """A name the server's model config lacks is a mistake in the request: every one at once, by spec field, the
    same on /plan and POST /jobs; the download of an unknown name stays a 404 (that is a missing resource)."""
    spec = tiny_spec(**UNKNOWN_NAMES)
    planned = server.post("/plan", json=spec)
    submitted = submit(
        server,
        spec,
        depth=gradient_frames(4),
        normal=gradient_frames(4),
        keyframe=gradient_frames(1),
        reference=[png(np.zeros((8, 8, 3)))],
    )
    assert planned.status_code == submitted.status_code == 422, planned.text
    assert planned.json() == submitted.json()
    detail = {d["field"]: d for d in planned.json()["detail"]}
    assert set(detail) == set(UNKNOWN_FIELDS), detail
    for field, (kind, name, one_known) in UNKNOWN_FIELDS.items():
        item = detail[field]
        assert (item["kind"], item["name"]) == (kind, name) and repr(name) in item["message"]
        if one_known:
            assert one_known in item["known"] and one_known in item["message"]
    assert "style" not in detail["loras[1].name"]["name"]
    r = server.post("/models/base/sd99/download")
    assert r.status_code == 404 and "sd15" in r.json()["detail"]["known"]
    r = server.post("/models/bases/sd15/download")
    assert r.status_code == 404 and "no model kind 'bases'" in r.json()["detail"]["message"]
    _, events = run_to_end(server, tiny_spec())
    assert events[-1][1] == "done"


@pytest.mark.parametrize(
    "over, guides, field",
    [
        ({"controlnets": [{"kind": "depth"}]}, {"depth": 3}, "depth"),
        ({"width": 60}, {}, "width"),
        ({"frames": 40}, {}, "frames"),
        ({"steps": 0}, {}, "steps"),
        ({"guidance": 31}, {}, "guidance"),
        ({}, {"normal": 4}, "normal"),
        ({"sparsectrl": {"keyframes": [0]}, "motion_module": "v3"}, {}, "keyframe"),
    ],
)
def test_bad_specs_are_422_with_the_field(server, over, guides, field):
    r = submit(server, tiny_spec(**over), **{k: gradient_frames(n) for k, n in guides.items()})
    assert_field(r, 422, field)


def test_undecodable_and_wrong_size_images(server):
    spec = tiny_spec(controlnets=[{"kind": "depth"}])
    frames = gradient_frames(4)
    assert_field(submit(server, spec, depth=frames[:3] + [b"not a png"]), 422, "depth[3]")
    big = png(np.zeros((SIZE * 2, SIZE, 3)))
    assert_field(submit(server, spec, depth=frames[:3] + [big]), 422, "depth[3]")


def test_keypoints_outside_the_image(server):
    spec = tiny_spec(frames=2, controlnets=[{"kind": "openpose"}])
    person = [10.0, 10.0, 1.0] * 18
    person[3:6] = [SIZE + 5.0, 10.0, 1.0]
    pose = json.dumps([{"people": [{"pose_keypoints_2d": person}]}] * 2).encode()
    r = submit(server, spec, pose=[pose])
    assert_field(r, 422, "pose")
    assert "outside" in r.text


def test_bad_json_and_missing_spec(server):
    assert_field(server.post("/jobs", data={"spec": "{nope"}, files=[("depth", ("a.png", b"x"))]), 422, "spec")
    assert_field(server.post("/jobs", data={"other": "1"}, files=[("depth", ("a.png", b"x"))]), 422, "spec")
    assert server.post("/jobs", content=b"hello", headers={"content-type": "text/plain"}).status_code == 415


def test_oversize_upload_is_413(server):
    huge = [b"\0" * (5 * 2**20)]
    r = submit(server, tiny_spec(controlnets=[{"kind": "depth"}]), depth=huge)
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_unknown_job_is_404(server):
    assert server.get("/jobs/nope").status_code == 404
    assert server.get("/jobs/nope/frames/0").status_code == 404
    assert server.delete("/jobs/nope").status_code == 404


def test_failure_while_running_is_an_error_event_and_frames_stay(local_server, monkeypatch):
    server = local_server
    from server.engine.pipeline import GuidedAnimateDiffPipeline

    original = GuidedAnimateDiffPipeline.decode

    def decode_then_fail(self, latents, on_frame=None, chunk=4):
        def frame_then_fail(index, rgb):
            on_frame(index, rgb)
            if index == 1:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

        return original(self, latents, frame_then_fail, chunk=1)

    monkeypatch.setattr(GuidedAnimateDiffPipeline, "decode", decode_then_fail)
    job_id, events = run_to_end(server, tiny_spec())
    assert events[-1][1] == "error" and "out of GPU memory" in events[-1][2]["message"]
    job = server.app_state.queue.get(job_id)
    assert sorted(p.name for p in job.frames_dir.iterdir()) == ["frame_0001.png", "frame_0002.png"]
    assert json.loads((job.folder / "manifest.json").read_text())["status"] == "error"
    monkeypatch.undo()
    _, after = run_to_end(server, tiny_spec())
    assert after[-1][1] == "done"


def test_event_stream_resumes_after_last_event_id(server):
    job_id, events = run_to_end(server, tiny_spec())
    with server.stream("GET", f"/jobs/{job_id}/events", headers={"Last-Event-ID": "3"}) as resumed:
        again = read_events(resumed)
    assert again == events[3:]


def test_health_answers_while_a_job_runs(server):
    job_id = submit(server, tiny_spec(steps=60, frames=8)).json()["id"]
    deadline = time.monotonic() + 30
    while server.get(f"/jobs/{job_id}").json()["step"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    health = server.get("/health").json()
    assert time.monotonic() - started < 1.0
    assert health["busy"] and "pipeline:sd15+v2" in health["loaded"]
    assert server.get(f"/jobs/{job_id}").json()["state"] == "running"
    server.delete(f"/jobs/{job_id}")
    with server.stream("GET", f"/jobs/{job_id}/events") as events:
        assert read_events(events)[-1][1] == "cancelled"


def test_long_clip_with_context_windows_and_prompt_travel(server):
    spec = tiny_spec(
        frames=40,
        steps=2,
        context={"length": 16, "overlap": 4, "loop": True},
        prompts=[{"frame": 0, "prompt": "a red ball"}, {"frame": 39, "prompt": "a blue cube"}],
    )
    job_id, events = run_to_end(server, spec)
    assert events[-1][1] == "done" and events[-1][2]["frames"] == 40
    manifest = server.get(f"/jobs/{job_id}/manifest").json()
    assert manifest["spec"]["context"] == {
        "length": 16,
        "overlap": 4,
        "loop": True,
        "fuse": "pyramid",
        "mode": "temporal",
        "motion_scales": [],
    }
    assert [k["frame"] for k in manifest["spec"]["prompts"]] == [0, 39]


def test_context_window_longer_than_the_motion_module_is_422(server):
    assert_field(submit(server, tiny_spec(frames=40, context={"length": 48})), 422, "context.length")
    # a clip that fits in one window runs as it is: the motion module sees its 4 frames, whatever the length
    assert server.post("/plan", json=tiny_spec(context={"length": 48})).status_code == 200
    assert_field(submit(server, tiny_spec(prompts=[{"frame": 9, "prompt": "x"}])), 422, "prompts[0].frame")


def test_pose_draw_returns_the_png_a_job_would_use_and_names_bad_input(server):
    people = [{"pose_keypoints_2d": [10.0, 12.0, 1.0, 30.0, 30.0, 1.0] + [0.0] * 48}]
    r = server.post("/pose/draw", json={"width": SIZE, "height": SIZE, "people": people})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(r.content)))
    assert image.shape == (SIZE, SIZE, 3) and image[12, 10].any() and not image[60, 60].any()
    far = [{"pose_keypoints_2d": [SIZE + 5.0, 1.0, 1.0] + [0.0] * 51}]
    r = server.post("/pose/draw", json={"width": SIZE, "height": SIZE, "people": far})
    assert r.status_code == 422 and "outside" in r.text and "confidence 0" in r.text
    r = server.post("/pose/draw", json={"height": SIZE, "people": []})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "width"
