"""The Ray Serve application (`python -m server --ray`) on a local Ray cluster, two generator replicas on CPU, tiny
models: jobs go to the replica that holds their (base, motion module) pair and queue like the single-process
server's; cancel reaches the replica within a step; a replica killed mid-job ends that job with an error event and
the others finish. The API battery itself runs against this server in test_server.py and test_server_process.py."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import TOKEN
from helpers import read_events, tiny_spec
from PIL import Image
from ray.serve.schema import ServeDeploySchema

from backend import launcher
from server.cluster.deployments import build
from server.cluster.replica import Replica
from server.engine.store import ModelStore
from server.loaders import ModelConfig
from server.protocol import frame_filename, parse_events, parse_spec

PAIR_A = {"base": "sd15", "motion_module": "v2"}
PAIR_B = {"base": "sd15", "motion_module": "v3"}


@pytest.fixture(scope="module")
def client(ray_server):
    with httpx.Client(base_url=ray_server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as c:
        yield c


def submit(client, **spec) -> str:
    r = client.post("/jobs", json=tiny_spec(**spec))
    assert r.status_code == 202, r.text
    return r.json()["id"]


def events_of(client, job_id) -> list[tuple[int, str, dict]]:
    with client.stream("GET", f"/jobs/{job_id}/events") as response:
        return read_events(response)


def manifest(client, job_id) -> dict:
    return client.get(f"/jobs/{job_id}/manifest").json()


def running_on(client, job_id, step: int = 1, timeout: float = 60) -> dict:
    """The replica a job runs on, once it has reached `step`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(f"/jobs/{job_id}").json()["step"] >= step:
            return manifest(client, job_id)["replica"]
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach step {step} in {timeout} s")


def assert_in_order(events):
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    kinds = [k for _, k, _ in events]
    assert kinds[0] == "queued" and kinds[1] == "loading" and kinds[-1] == "done", kinds
    steps = [d["i"] for _, k, d in events if k == "step"]
    assert steps == list(range(1, len(steps) + 1))
    assert kinds.index("frame") > max(i for i, k in enumerate(kinds) if k == "step")


def test_jobs_go_to_the_replica_that_holds_their_pair_and_queue_with_positions(client):
    a1, b1 = submit(client, steps=12, **PAIR_A), submit(client, steps=12, **PAIR_B)
    ra, rb = running_on(client, a1), running_on(client, b1)
    assert ra["replica"] != rb["replica"], "two jobs, two idle replicas: one each"
    a2, b2 = submit(client, seed=2, **PAIR_A), submit(client, seed=2, **PAIR_B)
    assert [client.get(f"/jobs/{j}").json()["position"] for j in (a2, b2)] == [1, 2]
    streams = {job: events_of(client, job) for job in (a1, b1, a2, b2)}
    assert streams[a2][0][1:] == ("queued", {"position": 1}) and streams[b2][0][1:] == ("queued", {"position": 2})
    for job, events in streams.items():
        assert_in_order(events)
        assert manifest(client, job)["status"] == "done"
    assert manifest(client, a2)["replica"] == ra and manifest(client, b2)["replica"] == rb
    assert streams[a2][-1][2]["loaded"] == [] and streams[b2][-1][2]["loaded"] == [], "the pair was warm"
    health = client.get("/health").json()
    assert health["slots"] == 2 and {r["pair"] for r in health["replicas"]} >= {"sd15+v2", "sd15+v3"}


def test_cancel_reaches_the_replica_within_a_step(client):
    long = submit(client, steps=150, frames=8, **PAIR_A)
    seen, cancelled_at = [], None
    with client.stream("GET", f"/jobs/{long}/events") as response:
        for _, kind, data in parse_events(response.iter_lines()):
            seen.append(kind)
            if kind == "step" and data["i"] == 2:
                cancelled_at = time.time()
                assert client.delete(f"/jobs/{long}").status_code == 200
    assert seen[-1] == "cancelled" and seen.count("step") <= 4
    assert manifest(client, long)["status"] == "cancelled"
    # Had the cancel not reached the replica, its 148 remaining steps would hold it: the next job of the pair runs
    # on the same replica and starts about a step after the cancel.
    after = submit(client, **PAIR_A)
    assert events_of(client, after)[-1][1] == "done"
    m = manifest(client, after)
    assert m["replica"] == manifest(client, long)["replica"]
    assert m["timings"]["started_at"] - cancelled_at < 3.0, m["timings"]


KILL_FRAMES, KILL_SIZE = 32, 64  # small frames decode faster than a frame crosses to the client
KILL_AT = 3  # the replica is killed as soon as it has written this frame


def scratch_of(job_id: str, timeout: float = 60) -> Path:
    """The job's scratch folder on its replica (Ray runs the replicas on this machine), made before its first step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(Path(tempfile.gettempdir()).glob(f"marionette-replica-*/{job_id}"))
        if found:
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"no scratch folder for job {job_id}")


def kill_once_written(frame: Path, pid: int, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not frame.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)


def test_a_model_root_reaches_the_ingress_and_every_replica(client):
    """--model-root with --ray: GET /models lists the root's LoRA, /plan takes it, and a job on each replica (two
    pairs, one per replica) applies it."""
    loras = {m["name"]: m for m in client.get("/models").json()["lora"]}
    assert loras["rootStyle"]["source"] == "rootStyle.safetensors" and loras["rootStyle"]["available"]
    lora = [{"name": "rootStyle", "weight": 0.7}]
    r = client.post("/plan", json=tiny_spec(loras=lora))
    assert r.status_code == 200, r.text
    assert r.json()["loras"] == lora
    jobs = [submit(client, loras=lora, **pair) for pair in (PAIR_A, PAIR_B)]
    for job_id in jobs:
        assert events_of(client, job_id)[-1][1] == "done"
    replicas = {str(manifest(client, job_id)["replica"]) for job_id in jobs}
    assert len(replicas) == 2, replicas  # each replica holds one pair since the first test


def test_a_replica_killed_mid_job_ends_that_job_with_an_error_and_the_others_finish(client):
    """The victim's replica is killed as soon as it has written frame KILL_AT to its scratch folder, while it
    decodes the others: of the frames it had written (the kill leaves the folder behind), none is lost but the one
    it was handing over; every frame that reached the ingress stays on disk and is served (a failure loses nothing),
    the previews too; the job ends with an error naming the replica; the job on the other replica finishes."""
    other = submit(client, steps=150, frames=8, **PAIR_A)
    running_on(client, other)
    victim = submit(client, steps=2, frames=KILL_FRAMES, width=KILL_SIZE, height=KILL_SIZE, **PAIR_B)
    other_events = []
    reader = threading.Thread(target=lambda: other_events.extend(events_of(client, other)))
    reader.start()
    events, replica, killer = [], None, None
    with client.stream("GET", f"/jobs/{victim}/events") as response:
        for event in parse_events(response.iter_lines()):
            events.append(event)
            if event[1] == "step" and replica is None:
                replica = manifest(client, victim)["replica"]
                assert replica["replica"] != manifest(client, other)["replica"]["replica"]
                assert client.get(f"/jobs/{other}").json()["state"] == "running"
                scratch = scratch_of(victim)
                frame = scratch / "frames" / frame_filename(KILL_AT)
                killer = threading.Thread(target=kill_once_written, args=(frame, replica["pid"]))
                killer.start()
    killer.join()
    kind, data = events[-1][1:]
    assert kind == "error" and "died" in data["message"] and replica["replica"] in data["message"], data
    frames = [d["index"] for _, k, d in events if k == "frame"]
    made = [i for i in range(KILL_FRAMES) if (scratch / "frames" / frame_filename(i)).is_file()]
    shutil.rmtree(scratch)
    print(f"killed replica: {len(made)} frames written on it, {len(frames)} served")
    assert KILL_AT in made and len(made) < KILL_FRAMES, f"the kill came after the last frame ({made})"
    assert set(frames) <= set(made) and [i for i in made if i not in frames] in ([], made[-1:]), (made, frames)
    status = client.get(f"/jobs/{victim}").json()
    assert frames == list(range(len(frames))) == status["frames_ready"] and data["frames"] == len(frames)
    for i in frames:
        r = client.get(f"/jobs/{victim}/frames/{i}")
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (KILL_SIZE, KILL_SIZE)
    steps = [d["i"] for _, k, d in events if k == "step"]
    assert steps and all(client.get(f"/jobs/{victim}/previews/{i}").status_code == 200 for i in steps)
    m = manifest(client, victim)
    assert m["status"] == "error" and m["replica"]["pid"] == replica["pid"] and "died" in m["message"]
    assert m["frames"] == [frame_filename(i) for i in frames]
    reader.join(120)
    assert other_events[-1][1] == "done"
    again = submit(client, **PAIR_B)  # the pair again: the surviving replica or the one Ray restarted
    assert events_of(client, again)[-1][1] == "done"


HANDOVER_FRAMES = 5


def test_a_replica_makes_a_frame_only_once_the_ingress_has_stored_the_one_before(tiny_models, tmp_path):
    """The replica's half without Ray, driven as the Generator deployment drives it, the test playing the ingress
    that is slow to store each frame: while it holds frame k, frame k+1 is not written, so a replica killed at any
    moment has at most one frame the ingress lacks."""
    store = ModelStore(ModelConfig.load(tiny_models / "models.toml"), device="cpu", dtype="float32")
    replica = Replica(store, tmp_path, {"replica": "here", "pid": os.getpid(), "node": "local", "device": "cpu"})
    spec = parse_spec(tiny_spec(steps=1, frames=HANDOVER_FRAMES))
    request = {"id": "handover", "created": time.time(), "manifest": {"spec": spec.to_dict()}}
    request.update(guide_counts={}, guides={})
    stored, changed = set(), threading.Condition()

    def is_stored(index: int) -> bool:
        with changed:
            return changed.wait_for(lambda: index in stored, timeout=1.0)

    async def ingress() -> list[list[str]]:
        on_disk = []
        async for message in replica.run(request, stored=is_stored):
            if message["event"] == "frame":
                index = message["data"]["index"]
                assert f"frames/{frame_filename(index)}" in message["files"], "a frame travels with its event"
                await asyncio.sleep(0.3)  # slow to store it: the replica waits meanwhile
                on_disk.append(sorted(p.name for p in (tmp_path / "handover" / "frames").glob("frame_*.png")))
                with changed:
                    stored.add(index)
                    changed.notify_all()
        return on_disk

    on_disk = asyncio.run(ingress())
    assert on_disk == [[frame_filename(j) for j in range(i + 1)] for i in range(HANDOVER_FRAMES)]


def test_ray_stays_out_of_the_addons_server_environment():
    requirements = sorted((launcher.EXTENSION_ROOT / "server").glob("requirements*.txt"))
    assert requirements
    for path in requirements:
        assert not re.search(r"^\s*ray\b", path.read_text(), re.MULTILINE | re.IGNORECASE), path


def test_the_serve_configs_in_the_repo_are_valid_and_build():
    root = launcher.EXTENSION_ROOT
    plain = yaml.safe_load((root / "deploy" / "serve.yaml").read_text())
    kuberay = yaml.safe_load(yaml.safe_load((root / "deploy" / "rayservice.yaml").read_text())["spec"]["serveConfigV2"])
    for config in (plain, kuberay):
        app = ServeDeploySchema.model_validate(config).applications[0]
        assert app.import_path == "server.cluster.deployments:build"
        built = build(app.args)
        assert built._bound_deployment.name == "Ingress"
