"""Every feature with every other: a pairwise covering set of jobs (every pair of levels of two features in at least
one job) through the server's API and the real pipeline on the tiny models.

Each job must run to its end with the right number and size of frames and finite latents, and every feature in it
must act: the job without that feature (same seed, everything else kept) gives other frames. Where a feature has a
neutral setting (CameraCtrl scale 0, motion scale 1, reference weight 0, FreeInit 1 iteration, init strength 1),
the job with it comes out bit for bit as the job without the feature, whatever else runs with it.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from conftest import TOKEN
from helpers import SIZE, multipart, png, read_events
from PIL import Image
from test_checkpoints import one_thread  # noqa: F401  (autouse: one torch thread for the tiny models)

from server.engine.pipeline import GuidedAnimateDiffPipeline
from server.loaders import ModelConfig
from tests.support import combos
from tests.support.combos import FACTORS, FRAMES, NEUTRAL, OFF, job, removal_checks, uncovered, without

# A covering set found by a greedy search over FACTORS (21 jobs where the full product has 147,456).
ROWS = [
    dict(control="depth", sparse="keyframes", context="temporal", travel="travel", init="init", motion="windows",
         scheduler="lcm", vae="tiny-ft"),
    dict(camera="motion_lora", context="unet", lora="style", reference="reference", free_init="free_init",
         guidance="none", vae="tiny-ft"),
    dict(control="normal+openpose", camera="cameractrl", lora="style", motion="job", scheduler="dpmpp_2m",
         vae="tiny-ft"),
    dict(control="normal+openpose", sparse="keyframes", camera="auto", context="loop", travel="travel",
         reference="reference", init="init", free_init="free_init", motion="job", scheduler="euler", guidance="none",
         vae="tiny-ft"),
    dict(control="depth", camera="auto", context="loop", lora="style", free_init="free_init", motion="windows",
         scheduler="lcm", guidance="none"),
    dict(sparse="keyframes", camera="motion_lora", travel="travel", reference="reference", init="init",
         scheduler="dpmpp_2m"),
    dict(context="temporal", lora="style", free_init="free_init", scheduler="euler", guidance="none"),
    dict(control="depth", sparse="keyframes", camera="cameractrl", context="unet", travel="travel",
         reference="reference", free_init="free_init", motion="windows"),
    dict(control="normal+openpose", context="unet", travel="travel", lora="style", init="init", motion="job",
         guidance="none"),
    dict(sparse="keyframes", camera="cameractrl", context="loop", reference="reference", init="init", scheduler="lcm"),
    dict(control="depth", camera="auto", init="init", scheduler="euler"),
    dict(control="normal+openpose", sparse="keyframes", camera="motion_lora", context="temporal", lora="style",
         reference="reference", init="init", free_init="free_init", motion="windows", scheduler="dpmpp_2m",
         guidance="none"),
    dict(control="depth", camera="motion_lora", init="init", free_init="free_init", motion="job", scheduler="lcm",
         guidance="none"),
    dict(sparse="keyframes", camera="auto", context="temporal", travel="travel", lora="style", reference="reference",
         motion="job", guidance="none"),
    dict(control="depth", context="loop", travel="travel", lora="style", reference="reference", motion="job",
         scheduler="dpmpp_2m"),
    dict(sparse="keyframes", camera="cameractrl", context="temporal", travel="travel", motion="windows",
         scheduler="euler", guidance="none"),
    dict(control="normal+openpose", sparse="keyframes", camera="auto", context="unet", reference="reference",
         scheduler="lcm"),
    dict(control="normal+openpose", camera="motion_lora", context="loop", lora="style", reference="reference",
         free_init="free_init", motion="job"),
    dict(control="normal+openpose", sparse="keyframes", camera="motion_lora", context="unet", travel="travel",
         lora="style", init="init", motion="job", scheduler="euler"),
    dict(sparse="keyframes", travel="travel", reference="reference", init="init"),
    dict(control="depth", camera="auto", context="unet", travel="travel", reference="reference", init="init",
         scheduler="dpmpp_2m"),
]  # fmt: skip


def name(row: dict) -> str:
    return "+".join(row.get(f, OFF) for f in FACTORS if row.get(f, OFF) != OFF) or "plain"


def neutral_checks() -> set[tuple[int, str]]:
    """(row, "factor:level") where a neutral setting is checked: the first row with it under each context level
    (where the loops differ), not every row, to keep the run short."""
    first: dict[tuple[str, str], int] = {}
    for i, row in enumerate(ROWS):
        for factor, level in row.items():
            if f"{factor}:{level}" in NEUTRAL:
                first.setdefault((f"{factor}:{level}", row.get("context", OFF)), i)
    return {(i, key) for (key, _), i in first.items()}


NEUTRAL_CHECKS = neutral_checks()


@pytest.fixture(scope="module")
def client(tiny_models, tmp_path_factory):
    from fastapi.testclient import TestClient

    from server.api import Settings, create_app

    toml = combos.models_toml(tiny_models)
    settings = Settings(models=ModelConfig.load(toml), data_dir=tmp_path_factory.mktemp("combination-jobs"))
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8420") as c:
        yield c


@pytest.fixture(scope="module")
def run(client):
    """run(spec, guides) -> (frames, H, W, 3) uint8 of a job run to its end, each distinct job run once. Checks the
    final latents are finite (a wrapper around the pipeline's own decode)."""
    finite: list[bool] = []
    decode = GuidedAnimateDiffPipeline.decode

    def checked(self, latents, *args, **kwargs):
        finite.append(bool(torch.isfinite(latents).all()))
        return decode(self, latents, *args, **kwargs)

    done: dict[str, np.ndarray] = {}

    def run_job(spec: dict, guides: dict) -> np.ndarray:
        key = json.dumps([spec, sorted(guides)], sort_keys=True)
        if key not in done:
            if guides:
                data, files = multipart(spec, **guides)
                r = client.post("/jobs", data=data, files=files)
            else:
                r = client.post("/jobs", json=spec)
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            with client.stream("GET", f"/jobs/{job_id}/events") as events:
                final = [e for e in read_events(events) if e[1] in ("done", "error", "cancelled")]
            assert final and final[-1][1] == "done", final
            assert finite[-1], f"NaN or inf in the final latents of {spec}"
            frames = []
            for i in range(FRAMES):
                image = client.get(f"/jobs/{job_id}/frames/{i}")
                assert image.status_code == 200, image.text
                frames.append(np.asarray(Image.open(io.BytesIO(image.content)).convert("RGB")))
            done[key] = np.stack(frames)
            assert done[key].shape == (FRAMES, SIZE, SIZE, 3)
        return done[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GuidedAnimateDiffPipeline, "decode", checked)
        yield run_job


def test_the_rows_cover_every_pair_of_levels():
    assert not uncovered(ROWS)
    assert all(set(row) <= set(FACTORS) and all(v in FACTORS[f] for f, v in row.items()) for row in ROWS)


REMOVALS = removal_checks(ROWS)


@pytest.mark.parametrize("index", range(len(ROWS)), ids=[name(row) for row in ROWS])
def test_every_feature_acts_with_the_others(index, run):
    row = ROWS[index]
    frames = run(*job(row))
    for factor, level in row.items():
        key = f"{factor}:{level}"
        if (index, factor) not in REMOVALS and (index, key) not in NEUTRAL_CHECKS:
            continue
        other = run(*job(without(row, factor)))
        change = np.abs(frames.astype(int) - other).mean()
        assert change > 0.05, f"{factor}={level} changed nothing ({change:.3f}) in {name(row)}"
        if (index, key) in NEUTRAL_CHECKS:
            same = run(*job(row, neutral=key))
            assert np.array_equal(same, other), f"{key} at its neutral value is not the job without it in {name(row)}"


def test_the_plan_says_where_a_combination_changes_what_runs(client):
    def notes(row, **over):
        spec = {**job(row)[0], **over}
        r = client.post("/plan", json=spec)
        assert r.status_code == 200, r.text
        return r.json()["notes"]

    assert any('context mode "unet"' in n for n in notes(dict(camera="auto", context="temporal")))
    ctrl = notes(dict(camera="cameractrl", context="temporal", motion="windows"), motion_scale=0.5)
    assert not any('context mode "unet"' in n for n in ctrl)  # CameraCtrl's poses follow the temporal windows
    assert any("motion_scale 0.5 is not used" in n for n in ctrl)


# --- CameraCtrl in temporal windows --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tiny_models):
    from server.engine.store import ModelStore

    return ModelStore(ModelConfig.load(combos.models_toml(tiny_models)), device="cpu", dtype="float32")


@pytest.mark.parametrize("rows", [8, 64], ids=["a-window-a-call", "windows-stacked"])
def test_cameractrl_poses_follow_the_temporal_windows(store, rows):
    """Mode "temporal" runs a motion module on the windows only, several stacked in one call when they fit `rows`:
    frames only window 0 holds come out as the module on window 0 with window 0's poses, likewise window 1."""
    from server.camera import window_input
    from server.engine.temporal_windows import TemporalWindows
    from server.engine.windows import context_windows, fusion_table

    pipe, cc = store.pipeline("sd15", "v3"), store.camera_control("cameractrl")
    path, windows = combos.camera_path(), context_windows(FRAMES, 3, 1)  # [0, 1, 2], [2, 3, 4]
    poses = [cc.encode(torch.from_numpy(window_input(path, idx, SIZE, SIZE)[0])) for idx in windows]
    motion = pipe.unet.get_submodule(cc.paths[0].split(".transformer_blocks")[0])  # down block 0's first module
    shape = (motion.in_channels, SIZE // 8, SIZE // 8)
    x = torch.randn((2, FRAMES, *shape), generator=torch.Generator().manual_seed(0))  # both halves of guidance
    table = fusion_table(FRAMES, windows, "pyramid").float()

    def windowed():
        with TemporalWindows(motion, windows, table, rows=rows, select=cc.use):
            return motion(x.reshape(-1, *shape), num_frames=FRAMES).reshape(x.shape)

    def alone(w):
        with cc.conditioning([poses[w]], 1.0, 2):
            return motion(x[:, windows[w]].reshape(-1, *shape), num_frames=3).reshape(2, 3, *shape)

    installed = cc.install(pipe.unet)
    try:
        with cc.conditioning(poses, 1.0, 2):
            out = windowed()
        first, second = alone(0), alone(1)
        plain = windowed()  # outside a conditioning block the processors let the attention be
    finally:
        installed.remove()
    assert torch.allclose(out[:, :2], first[:, :2], atol=1e-5)
    assert torch.allclose(out[:, 3:], second[:, 1:], atol=1e-5)
    assert (out - plain).abs().mean() > 1e-3


def test_cameractrl_in_one_temporal_window_is_cameractrl_without_windows(store):
    """One window covering the clip: mode "temporal" with CameraCtrl computes what the plain loop does, in frame
    chunks too (up to rounding), and the poses act in it."""
    from server.camera import window_input
    from server.engine.conditioning import CameraPoses
    from server.engine.windows import ContextWindows

    pipe, path = store.pipeline("sd15", "v3"), combos.camera_path()
    store.set_loras(pipe, [])
    camera = CameraPoses(
        store.camera_control("cameractrl"), lambda idx: torch.from_numpy(window_input(path, idx, SIZE, SIZE)[0])
    )

    def run(**kw):
        seed = torch.Generator().manual_seed(3)
        return pipe.generate(
            prompt="a marionette", num_frames=FRAMES, height=SIZE, width=SIZE, steps=2, generator=seed, **kw
        )

    plain = run(camera=camera)
    whole = run(camera=camera, context=ContextWindows(16, 4, mode="temporal"))
    chunked = run(camera=camera, context=ContextWindows(16, 4, mode="temporal", chunk=2))
    assert np.array_equal(plain, whole)
    assert np.abs(plain.astype(int) - chunked).max() <= 1
    assert np.abs(plain.astype(int) - run()).mean() > 0.5


# --- the heaviest sensible job through the real server process -----------------------------------------------------


@pytest.fixture(scope="module")
def served(tiny_models, tmp_path_factory):
    """The server as a subprocess (python -m server) on the tiny models and the tiny CameraCtrl, requiring TOKEN."""
    import os

    from backend import launcher

    data = tmp_path_factory.mktemp("served-combinations")
    args = ["--models", str(combos.models_toml(tiny_models)), "--port", "0", "--data", str(data), "--token", TOKEN]
    server = launcher.start(os.environ.get("MARIONETTE_SERVER_PYTHON"), args=args, log=data / "stdout.log", timeout=180)
    yield server
    server.stop()


def test_cameractrl_24_frames_in_windows_with_a_reference_free_init_and_motion_scale(served):
    """A 24-frame CameraCtrl shot in temporal windows of 16 with an image reference, FreeInit (2 iterations) and a
    motion scale, through the add-on's own client: every frame comes back and the manifest says what ran."""
    from test_camera_motion import make_path, orbit
    from test_cameractrl import small

    from backend.client import Client

    frames = 24
    spec = {
        **job({})[0],
        "frames": frames,
        "motion_module": "v3",
        "camera_motion": "cameractrl",
        "camera": small(make_path(orbit, frames=frames)),
        "cameractrl": {"scale": 1.0},
        "context": {"length": 16, "overlap": 8, "mode": "temporal"},
        "references": [{"weight": 0.8}],
        "free_init": {"iterations": 2},
        "motion_scale": 0.8,
    }
    client = Client(served.url, token=TOKEN, timeout=120)
    job_id = client.submit(spec, {"reference": [png(combos.REFERENCE_IMAGE)]})
    events = [(kind, data) for _, kind, data in client.events(job_id)]
    assert events[-1][0] == "done", events[-1]
    steps = [data for kind, data in events if kind == "step"]
    assert [(s["i"], s["n"]) for s in steps] == [(i, 4) for i in range(1, 5)]  # 2 steps, twice
    images = {d["index"]: client.fetch(d["url"]) for kind, d in events if kind == "frame"}
    assert sorted(images) == list(range(frames))
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(images[i])).convert("RGB")) for i in range(frames)])
    assert pixels.shape == (frames, SIZE, SIZE, 3) and pixels.std() > 1
    manifest = json.loads(client.fetch(f"/jobs/{job_id}/manifest"))
    windows = manifest["plan"]["cameractrl"]["windows"]
    assert [w["frames"] for w in windows] == [list(range(16)), list(range(8, 24))]
    assert manifest["plan"]["sampling"]["free_init_iterations"] == 2
    assert manifest["plan"]["sampling"]["motion_scales"] == [0.8, 0.8]
    assert manifest["plan"]["references"][0]["weight"] == 0.8 and len(manifest["frames"]) == frames


def test_each_jobs_scheduler_starts_from_the_base_models_settings(run):
    """A job's scheduler is made from the base checkpoint's scheduler settings, not from the previous job's
    scheduler (DPM++'s solver settings must not reach the next job's DDIM)."""
    from server.engine import runner

    bases = []
    make = runner.make_scheduler

    def recording(name, base_config=None):
        bases.append(dict(base_config))
        return make(name, base_config)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "make_scheduler", recording)
        for scheduler in ("dpmpp_2m", "lcm", "ddim"):
            run({**job({})[0], "scheduler": scheduler, "seed": 7}, {})
    assert len(bases) == 3 and bases[0] == bases[1] == bases[2]
    assert "solver_order" not in bases[2] and "original_inference_steps" not in bases[2]
