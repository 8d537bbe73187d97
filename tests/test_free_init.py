"""FreeInit and the motion scale on the tiny models: 1 iteration / scale 1 are bit-identical to none, the low-pass
filters are the original's, scale 0 makes every motion module the identity, per-window scales reach their windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from server.engine.conditioning import Keyframes
from server.engine.free_init import FreeInit, low_pass, mix
from server.engine.init_video import InitVideo
from server.engine.motion_scale import MOTION_MODULE, MotionScale
from server.engine.schedulers import make_scheduler
from server.engine.store import ModelStore
from server.engine.temporal_windows import TemporalWindows
from server.engine.windows import ContextWindows, context_windows, fusion_table
from server.loaders import ModelConfig
from server.protocol import SCHEDULERS

SIZE, FRAMES, STEPS = 64, 4, 2


@pytest.fixture(scope="module")
def store(tiny_models):
    return ModelStore(ModelConfig.load(tiny_models / "models.toml"), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def pipe(store):
    pipe = store.pipeline("sd15", "v3")
    store.set_loras(pipe, [])
    return pipe


def run(pipe, **kw):
    args = dict(
        prompt="a marionette",
        num_frames=FRAMES,
        height=SIZE,
        width=SIZE,
        steps=STEPS,
        guidance=1.0,  # no classifier-free guidance: half the work, the same code paths
        generator=torch.Generator().manual_seed(5),
    )
    args.update(kw)
    return pipe.generate(**args).astype(int)


def motion_modules(model):
    return [m for m in model.modules() if type(m).__name__ == MOTION_MODULE]


# --- the frequency filter ----------------------------------------------------------------------------------------


def original_mask(kind, shape, d_s, d_t):
    """The FreeInit paper's filters written out per element, as its freeinit_utils loops them."""
    frames, height, width = shape
    mask = np.zeros(shape)
    for t in range(frames):
        for h in range(height):
            for w in range(width):
                d2 = ((d_s / d_t) * (2 * t / frames - 1)) ** 2 + (2 * h / height - 1) ** 2 + (2 * w / width - 1) ** 2
                if kind == "gaussian":
                    mask[t, h, w] = math.exp(-1 / (2 * d_s**2) * d2)
                elif kind == "butterworth":
                    mask[t, h, w] = 1 / (1 + (d2 / d_s**2) ** 4)
                else:
                    mask[t, h, w] = 1 if d2 <= d_s * 2 else 0
    return mask


@pytest.mark.parametrize("kind", ["butterworth", "gaussian", "ideal", "box"])
def test_low_pass_is_one_at_dc_falls_off_and_matches_the_original(kind):
    shape = (8, 16, 16)
    mask = low_pass(shape, kind, 0.25, 0.5)
    assert mask.shape == shape and mask.min() >= 0 and mask.max() <= 1
    assert mask[4, 8, 8] == 1  # DC, after fftshift
    assert mask[4, 0, 0] < 0.01 and mask[0, 8, 8] <= mask[4, 8, 8]  # highest spatial / temporal frequency
    if kind != "box":
        assert np.allclose(mask.numpy(), original_mask(kind, shape, 0.25, 0.5), atol=1e-6)
    else:  # the original's box: ±round(H/2 · d_s) around the centre, ±round(T/2 · d_t) frames
        assert mask[4, 6:10, 6:10].eq(1).all() and mask.sum() == 4 * 4 * 4
    if kind == "butterworth":  # half power at the spatial cutoff, d = d_s
        assert mask[4, 8, 10] == pytest.approx(0.5, abs=1e-6)
    # a higher temporal cutoff keeps more temporal frequencies
    assert low_pass(shape, kind, 0.25, 1.0).sum() >= mask.sum()


def test_mix_keeps_the_low_frequencies_of_one_and_the_high_of_the_other():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn((1, 4, 8, 8, 8), generator=g), torch.randn((1, 4, 8, 8, 8), generator=g)
    assert torch.allclose(mix(a, b, torch.ones(8, 8, 8)), a, atol=1e-5)
    assert torch.allclose(mix(a, b, torch.zeros(8, 8, 8)), b, atol=1e-5)
    mixed = mix(a, b, low_pass((8, 8, 8), "ideal", 0.25, 0.25))
    assert torch.allclose(mixed.mean(dim=(-3, -2, -1)), a.mean(dim=(-3, -2, -1)), atol=1e-5)  # DC from `a`


# --- FreeInit in the loop ----------------------------------------------------------------------------------------


def test_free_init_one_iteration_is_none_and_two_differ_with_steps_counted_once(pipe):
    plain = run(pipe)
    assert np.array_equal(run(pipe, free_init=FreeInit(iterations=1)), plain)
    seen = []
    twice = run(pipe, free_init=FreeInit(iterations=2), on_step=lambda i, n, x0: seen.append((i, n)))
    assert not np.array_equal(twice, plain)
    assert seen == [(i, 2 * STEPS) for i in range(2 * STEPS)]  # one progress bar over both iterations
    # the same seed gives the same result (the fresh noise comes from the job's generator)
    assert np.array_equal(run(pipe, free_init=FreeInit(iterations=2)), twice)


def test_free_init_restarts_from_the_original_diffuse_timestep_and_with_video_to_video(pipe):
    for name in SCHEDULERS:  # text-to-video restarts where the original diffuses to: t = 999
        scheduler = make_scheduler(name)
        scheduler.set_timesteps(STEPS)
        assert scheduler.timesteps[0] == scheduler.config.num_train_timesteps - 1
    render = torch.rand((FRAMES, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(1))
    once = run(pipe, init=InitVideo(render, 0.7))
    twice = run(pipe, init=InitVideo(render, 0.7), free_init=FreeInit(iterations=2, filter="box"))
    assert not np.array_equal(once, twice)
    # strength 0 keeps no step: nothing to repeat
    assert np.array_equal(
        run(pipe, init=InitVideo(render, 0.0), free_init=FreeInit(2)), run(pipe, init=InitVideo(render, 0.0))
    )


# --- motion scale -----------------------------------------------------------------------------------------------


def test_motion_scale_one_is_none_without_a_hook(pipe):
    hooks = []

    def on_step(i, n, x0):
        hooks.extend(len(m._forward_hooks) for m in motion_modules(pipe.unet))

    assert np.array_equal(run(pipe, motion_scale=1.0, on_step=on_step), run(pipe))
    assert hooks and not any(hooks)
    ctx = ContextWindows(length=4, overlap=2, mode="temporal", motion_scales=[1.0, 1.0])
    assert np.array_equal(run(pipe, num_frames=6, context=ctx), run(pipe, num_frames=6, context=ContextWindows(4, 2)))


def test_motion_scale_zero_is_the_unet_without_its_motion_modules(store, pipe):
    module = motion_modules(pipe.unet)[0]
    x = torch.randn((2 * FRAMES, module.in_channels, 8, 8))
    with MotionScale(pipe.unet, [0.0]):
        assert torch.equal(module(x, num_frames=FRAMES), x)
    assert not torch.equal(module(x, num_frames=FRAMES), x)
    scaled = run(pipe, motion_scale=0.0)
    for m in motion_modules(pipe.unet):  # the motion modules removed: each returns its input
        m.forward = lambda hidden_states, *a, **k: hidden_states
    try:
        removed = run(pipe)
    finally:
        for m in motion_modules(pipe.unet):
            del m.forward
    assert np.array_equal(scaled, removed)
    assert not np.array_equal(run(pipe, motion_scale=0.5), run(pipe))
    # SparseCtrl's own motion modules are not scaled (ADE scales the motion model only)
    sparse = store.sparsectrl("rgb")
    keys = Keyframes(sparse, torch.rand((1, 3, SIZE, SIZE)), [0])
    hooks = []  # how many forward hooks each of SparseCtrl's motion modules has while it runs: only this one
    handles = [
        m.register_forward_hook(lambda m, a, o: hooks.append(len(m._forward_hooks))) for m in motion_modules(sparse)
    ]
    try:
        run(pipe, keyframes=keys, motion_scale=0.0, steps=1)
    finally:
        for h in handles:
            h.remove()
    assert hooks and set(hooks) == {1}


def test_per_window_scales_reach_their_windows_in_mode_unet(pipe):
    """One step: frames 0-1 are in window 0 only and frames 4-5 in window 1 only, so each pair is predicted with
    exactly its window's scale."""

    def x0(scales):
        out = []
        ctx = ContextWindows(length=4, overlap=2, mode="unet", motion_scales=scales)
        run(pipe, num_frames=6, steps=1, context=ctx, on_step=lambda i, n, x: out.append(x))
        return out[-1]

    mixed, halves, zeros = x0([0.5, 0.0]), x0([0.5, 0.5]), x0([0.0, 0.0])
    assert torch.equal(mixed[:, :, :2], halves[:, :, :2]) and torch.equal(mixed[:, :, 4:], zeros[:, :, 4:])
    assert not torch.equal(mixed[:, :, :2], zeros[:, :, :2]) and not torch.equal(mixed[:, :, 4:], halves[:, :, 4:])


def test_per_window_scales_reach_their_windows_in_mode_temporal(pipe):
    """At the motion module: the window scaled by 0 gives back its frames, the other its module's output."""
    module = motion_modules(pipe.unet)[0]
    windows = context_windows(6, 4, 2, False)
    x = torch.randn((6, module.in_channels, 4, 4))
    table = fusion_table(6, windows, "pyramid").float()
    with TemporalWindows(module, windows, table, rows=64, scales=[1.0, 0.0]):
        out = module(x, num_frames=6)
    assert torch.allclose(out[:2], module(x[:4], num_frames=4)[:2], atol=1e-6)
    assert torch.equal(out[4:], x[4:])
    # the whole job at one scale through the windows, as per-window scales all the same
    job = run(pipe, num_frames=6, motion_scale=0.5, context=ContextWindows(4, 2))
    same = run(pipe, num_frames=6, context=ContextWindows(4, 2, motion_scales=[0.5, 0.5]))
    assert np.array_equal(job, same)
