"""Video-to-video on the tiny models: strength 0 is the VAE round trip of the render, 1 is text-to-video, and in
between the frames move away from the render as the strength grows, with every scheduler and conditioning."""

from __future__ import annotations

import hashlib

import httpx
import numpy as np
import pytest
import torch
from helpers import multipart, png, read_events, tiny_spec

from server.engine.conditioning import Control, Keyframes
from server.engine.init_video import InitVideo, encode, kept_steps, truncate
from server.engine.schedulers import make_scheduler
from server.engine.store import ModelStore
from server.engine.windows import ContextWindows
from server.loaders import ModelConfig
from server.protocol import SCHEDULERS

SIZE, FRAMES, STEPS = 64, 4, 4


@pytest.fixture(scope="module")
def store(tiny_models):
    return ModelStore(ModelConfig.load(tiny_models / "models.toml"), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def pipe(store):
    pipe = store.pipeline("sd15", "v3")
    store.set_loras(pipe, [])
    return pipe


def render(frames: int = FRAMES) -> torch.Tensor:
    """A smooth moving render (float (frames, 3, H, W) in [0, 1]), something a VAE can carry."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    return torch.stack([torch.stack([xs, ys, (xs + ys + f / frames) % 1]) for f in range(frames)])


def run(pipe, steps=STEPS, seed=5, **kw):
    args = dict(
        prompt="a marionette",
        negative_prompt="blurry",
        num_frames=FRAMES,
        height=SIZE,
        width=SIZE,
        steps=steps,
        guidance=1.0,  # no classifier-free guidance (half the work) unless a test asks for it
        generator=torch.Generator().manual_seed(seed),
    )
    args.update(kw)
    return pipe.generate(**args).astype(int)


def counted(pipe, **kw):
    """(frames, the step events' (i, n))."""
    seen = []
    frames = run(pipe, on_step=lambda i, n, x0: seen.append((i, n)), **kw)
    return frames, seen


def as_uint8(images: torch.Tensor) -> np.ndarray:
    return (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(int)


def test_strength_zero_returns_the_vae_round_trip_of_the_render(pipe):
    frames, seen = counted(pipe, init=InitVideo(render(), 0.0))
    assert seen == []  # no denoising step at all
    latents = encode(pipe.vae, render())
    round_trip = pipe.decode(latents).astype(int)
    assert np.abs(frames - round_trip).max() <= 1
    # as far from the render as the VAE round trip is (a random tiny VAE: that is not near), no further
    error = np.abs(frames - as_uint8(render())).mean()
    assert error == pytest.approx(np.abs(round_trip - as_uint8(render())).mean(), abs=0.01)
    # encoded in chunks: the chunk size does not change the latents
    assert torch.allclose(encode(pipe.vae, render(), chunk=1), latents, atol=1e-5)


def test_strength_one_is_text_to_video_bit_for_bit(pipe):
    assert np.array_equal(run(pipe, guidance=7.5, init=InitVideo(render(), 1.0)), run(pipe, guidance=7.5))


def test_the_distance_to_the_render_grows_with_the_strength(pipe):
    base = run(pipe, init=InitVideo(render(), 0.0))
    distances = [np.abs(run(pipe, init=InitVideo(render(), s)) - base).mean() for s in (0.25, 0.5, 0.75)]
    assert distances[0] > 0
    assert all(a < b for a, b in zip(distances, distances[1:])), distances
    # the random tiny model forgets the render fast: by 0.75 the frames are about as far as text-to-video's
    assert np.abs(run(pipe) - base).mean() > distances[0]


@pytest.fixture(scope="module")
def untouched(pipe):
    """The render through the VAE: what strength 0 gives with any scheduler."""
    return pipe.decode(encode(pipe.vae, render())).astype(int)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_scheduler_runs_the_kept_steps_from_the_render(pipe, untouched, name):
    original = pipe.scheduler
    try:
        pipe.scheduler = make_scheduler(name, original.config)
        frames, seen = counted(pipe, init=InitVideo(render(), 0.5))
        assert [i for i, _ in seen] == list(range(kept_steps(STEPS, 0.5))) == [0, 1]
        assert all(n == 2 for _, n in seen)
        t2v = run(pipe)
        # closer to the render's round trip than text-to-video is, yet denoised
        assert 0 < np.abs(frames - untouched).mean() < np.abs(t2v - untouched).mean()
    finally:
        pipe.scheduler = original


def test_the_first_kept_timestep_is_where_the_noise_goes():
    scheduler = make_scheduler("euler")
    scheduler.set_timesteps(10)
    kept = truncate(scheduler, 10, 0.3)
    assert len(kept) == 3 and kept[0] == scheduler.timesteps[7] and scheduler.begin_index == 7


@pytest.mark.parametrize("mode", ["temporal", "unet"])
def test_with_context_windows_controlnets_and_sparsectrl(store, pipe, mode):
    g = torch.Generator().manual_seed(3)
    guides = torch.rand((6, 3, SIZE, SIZE), generator=g)
    kw = dict(
        steps=2,
        num_frames=6,
        context=ContextWindows(length=4, overlap=2, mode=mode),
        controls=[Control(store.controlnet("depth"), guides, 0.8)],
        keyframes=Keyframes(store.sparsectrl("rgb"), guides[:1], [0]),
    )
    plain = run(pipe, **kw)
    assert not np.array_equal(run(pipe, init=InitVideo(render(6), 0.5), **kw), plain)
    assert np.array_equal(run(pipe, init=InitVideo(render(6), 1.0), **kw), plain)
    assert np.abs(run(pipe, init=InitVideo(render(6), 0.0), **kw) - pipe.decode(encode(pipe.vae, render(6)))).max() <= 1


# --- through the real server -------------------------------------------------------------------------------------


def init_frames(frames: int = 4) -> list[bytes]:
    return [png(f) for f in as_uint8(render(frames))]


def test_a_job_with_init_frames_runs_and_its_manifest_says_what_it_used(tiny_server):
    from conftest import TOKEN

    spec = tiny_spec(
        motion_module="v3",
        steps=4,
        init={"strength": 0.5},
        free_init={"iterations": 2, "filter": "gaussian"},
        motion_scale=0.5,
    )
    frames = init_frames()
    data, files = multipart(spec, init=frames)
    with httpx.Client(base_url=tiny_server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        plan = client.post("/plan", json=spec)
        assert plan.status_code == 200, plan.text
        sampling = plan.json()["sampling"]
        assert sampling["denoising_steps"] == 2 and sampling["cost"] == 2 and sampling["total_steps"] == 4
        r = client.post("/jobs", data=data, files=files)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        with client.stream("GET", f"/jobs/{job_id}/events") as stream:
            events = read_events(stream)
        assert events[-1][1] == "done", events[-1]
        steps = [e[2] for e in events if e[1] == "step"]
        assert [(s["i"], s["n"]) for s in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]  # one bar, to 100% once
        manifest = client.get(f"/jobs/{job_id}/manifest").json()
    assert manifest["init"] == {
        "strength": 0.5,
        "frames": 4,
        "sha256": hashlib.sha256(b"".join(frames)).hexdigest(),
        "denoising_steps": 2,
    }
    assert manifest["spec"]["free_init"]["iterations"] == 2 and manifest["spec"]["motion_scale"] == 0.5
    assert manifest["plan"]["sampling"]["cost"] == 2


@pytest.mark.parametrize(
    "over, count, size, field",
    [
        ({"init": {"strength": 0.5}}, 3, SIZE, "init"),
        ({}, 4, SIZE, "init"),
        ({"init": {"strength": 1.5}}, 4, SIZE, "init.strength"),
        ({"init": {"strength": 0.5}}, 4, SIZE * 2, "init[0]"),
        ({"free_init": {"iterations": 9}}, 0, SIZE, "free_init.iterations"),
        ({"motion_scale": -1}, 0, SIZE, "motion_scale"),
        ({"frames": 6, "context": {"length": 4, "overlap": 2, "motion_scales": [1]}}, 0, SIZE, "context.motion_scales"),
    ],
)
def test_bad_init_free_init_and_motion_scale_are_422_with_the_field(tiny_server, over, count, size, field):
    from conftest import TOKEN

    spec = tiny_spec(motion_module="v3", **over)
    with httpx.Client(base_url=tiny_server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        if count:
            data, files = multipart(spec, init=[png(np.zeros((size, SIZE, 3)))] * count)
            r = client.post("/jobs", data=data, files=files)
        else:
            r = client.post("/jobs", json=spec)
    assert r.status_code == 422, r.text
    assert any(d["field"] == field for d in r.json()["detail"]), r.json()
