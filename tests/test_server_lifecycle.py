"""The real server process stopping badly and well on one data folder: after kill -9 the jobs that were queued or
running come back as "interrupted" with what they wrote served; on SIGTERM every open stream gets its final event;
and a client that reconnects with Last-Event-ID gets the ending event."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
from helpers import gradient_frames, multipart, tiny_spec

from backend import launcher
from server.protocol import parse_events

TOKEN = "lifecycle"


def _start(tiny_models, data):
    # The token travels in the environment, as the add-on passes it.
    os.environ["MARIONETTE_TOKEN"] = TOKEN
    try:
        return launcher.start(
            os.environ.get("MARIONETTE_SERVER_PYTHON"),
            args=["--models", str(tiny_models / "models.toml"), "--port", "0", "--data", str(data)],
            log=data.parent / f"stdout-{time.monotonic_ns()}.log",
            timeout=240,
        )
    finally:
        del os.environ["MARIONETTE_TOKEN"]


def client(server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


def submit(c, spec, **guides) -> str:
    if guides:
        data, files = multipart(spec, **guides)
        r = c.post("/jobs", data=data, files=files)
    else:
        r = c.post("/jobs", json=spec)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def events(c, job_id, after=None):
    headers = {"Last-Event-ID": str(after)} if after is not None else {}
    with c.stream("GET", f"/jobs/{job_id}/events", headers=headers, timeout=120) as r:
        assert r.status_code == 200, r.read()
        return list(parse_events(r.iter_lines()))


def wait_for_step(c, job_id, step=2, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if c.get(f"/jobs/{job_id}").json()["step"] >= step:
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach step {step}")


def test_kill_9_then_sigterm_then_restart_on_the_same_data_folder(tiny_models, tmp_path):
    data = tmp_path / "data"
    first = _start(tiny_models, data)
    try:
        c = client(first)
        done = submit(c, tiny_spec(steps=1, frames=2))
        assert events(c, done)[-1][1] == "done"
        running = submit(c, tiny_spec(steps=150, frames=8, controlnets=[{"kind": "depth"}]), depth=gradient_frames(8))
        queued = submit(c, tiny_spec(steps=1, frames=2))
        wait_for_step(c, running)
        last_seen = 2  # a client watching it had seen "queued" and "loading" at least
    finally:
        first.process.kill()  # kill -9: nothing runs on the way out
        first.process.wait()
    # what a kill in the middle of writing a frame leaves (frames are written through a temporary file)
    (data / "jobs" / running / "frames" / "frame_0001.png.tmp").write_bytes(b"\x89PNG\r\n\x1a\n half")

    second = _start(tiny_models, data)
    try:
        c = client(second)
        assert c.get(f"/jobs/{done}").json()["state"] == "done"
        assert c.get(f"/jobs/{done}/frames/1").status_code == 200
        for job_id in (running, queued):
            status = c.get(f"/jobs/{job_id}").json()
            assert status["state"] == "interrupted" and "stopped" in status["error"], status
            manifest = c.get(f"/jobs/{job_id}/manifest").json()
            assert manifest["status"] == "interrupted" and manifest["frames"] == []
        assert c.get(f"/jobs/{running}/previews/1").status_code == 200, "what the running job wrote is served"
        # a client that was watching reconnects with the last id it had: it gets the ending event, then the end
        assert [(s, k) for s, k, _ in events(c, running, after=last_seen)] == [(last_seen + 1, "interrupted")]
        assert [k for _, k, _ in events(c, queued)] == ["interrupted"]
        assert not list(data.rglob("*.tmp"))

        # SIGTERM with a job running and one queued, both watched
        long = submit(c, tiny_spec(steps=150, frames=8))
        waiting = submit(c, tiny_spec(steps=1, frames=2))
        seen = {}

        def watch(job_id):
            with httpx.Client(base_url=second.url, headers={"Authorization": f"Bearer {TOKEN}"}) as w:
                seen[job_id] = events(w, job_id)

        watchers = [threading.Thread(target=watch, args=(j,)) for j in (long, waiting)]
        for t in watchers:
            t.start()
        wait_for_step(c, long, 1)
        time.sleep(0.5)
        second.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        for t in watchers:
            t.join(60)
        ended_in = time.monotonic() - started
        assert second.process.wait(60) is not None
    finally:
        second.stop()
    assert seen[long][-1][1] == "cancelled" and seen[waiting][-1][1] == "cancelled", seen
    assert "shutting down" in seen[long][-1][2]["message"]
    assert ended_in < 10, f"streams took {ended_in:.1f} s to end after SIGTERM"

    third = _start(tiny_models, data)
    try:
        c = client(third)
        for job_id in (long, waiting):
            assert c.get(f"/jobs/{job_id}/manifest").json()["status"] == "cancelled", job_id
        assert c.get(f"/jobs/{running}").json()["state"] == "interrupted"
        assert [k for _, k, _ in events(c, long, after=40)] == ["cancelled"]
    finally:
        third.stop()
    log = (data / "server.log").read_text()
    assert "marked 2 jobs interrupted" in log and f"job {done} ended: done" in log
