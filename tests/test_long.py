"""Long and looping clips: context windows (whole UNet or motion modules only), fusion, loops, per-window LoRAs,
prompt travel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from server.engine.conditioning import Control, travel
from server.engine.store import ModelStore
from server.engine.windows import ContextWindows, context_windows, fusion_table
from server.loaders import ModelConfig

SIZE = 64


@pytest.fixture(scope="module")
def store(tiny_models):
    return ModelStore(ModelConfig.load(tiny_models / "models.toml"), device="cpu", dtype="float32")


def run(pipe, frames, **kw):
    args = dict(
        prompt="a marionette",
        negative_prompt="blurry",
        num_frames=frames,
        height=SIZE,
        width=SIZE,
        steps=2,
        guidance=7.5,
        generator=torch.Generator().manual_seed(3),
    )
    args.update(kw)
    return pipe.generate(**args)


@pytest.mark.parametrize("frames, length, overlap", [(64, 16, 4), (40, 16, 8), (17, 16, 4), (128, 16, 2)])
def test_windows_cover_the_clip_in_order(frames, length, overlap):
    windows = context_windows(frames, length, overlap, loop=False)
    assert all(len(w) == length and w == list(range(w[0], w[0] + length)) for w in windows)
    assert windows[0][0] == 0 and windows[-1][-1] == frames - 1
    assert set().union(*map(set, windows)) == set(range(frames))
    starts = [w[0] for w in windows]
    assert all(0 < b - a <= length - overlap for a, b in zip(starts, starts[1:]))


def test_short_clip_is_one_window():
    assert context_windows(12, 16, 4, loop=False) == [list(range(12))]


def test_looped_windows_wrap_from_the_end_to_the_start():
    windows = context_windows(32, 16, 4, loop=True)
    assert any(w.index(0) == w.index(31) + 1 for w in windows if 0 in w and 31 in w)
    counts = np.bincount(np.concatenate(windows), minlength=32)
    assert counts.min() >= 1 and len(windows) == 3
    short = context_windows(10, 16, 4, loop=True)
    assert any(w.index(0) > 0 for w in short), "a short loop still gets a window across its seam"


@pytest.mark.parametrize("fuse", ["pyramid", "flat"])
@pytest.mark.parametrize("loop", [False, True])
def test_fuse_weights_of_every_frame_sum_to_one(fuse, loop):
    windows = context_windows(50, 16, 6, loop)
    table = fusion_table(50, windows, fuse)
    assert torch.allclose(table.sum(0), torch.ones(50, dtype=table.dtype))
    for w, idx in enumerate(windows):
        outside = sorted(set(range(50)) - set(idx))
        assert (table[w, outside] == 0).all()
    if fuse == "pyramid" and not loop:
        first = windows[0]
        assert table[0, first[0]] == 1 and table[0, first[-1]] < table[1, first[-1]]


def test_prompt_travel_interpolates_between_keys():
    a, b = torch.zeros(3, 4), torch.ones(3, 4)
    per_frame = travel([(2, a), (6, b)], 9)
    assert torch.equal(per_frame[0], a) and torch.equal(per_frame[2], a)
    assert torch.allclose(per_frame[3], torch.full((3, 4), 0.25))
    assert torch.allclose(per_frame[4], torch.full((3, 4), 0.5))
    assert torch.equal(per_frame[6], b) and torch.equal(per_frame[8], b)


def test_prompt_travel_reaches_the_unet(store):
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    seen = []
    hook = pipe.unet.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["encoder_hidden_states"].clone()), with_kwargs=True
    )
    try:
        run(pipe, 8, prompt_keys=[(0, "a red ball"), (7, "a blue cube")], steps=1)
    finally:
        hook.remove()
    embeds = seen[0]  # (2 * frames, tokens, dim): negatives, then positives
    pos = embeds[8:]
    red = pipe.encode_prompt("a red ball", "cpu", 1, False)[0][0]
    blue = pipe.encode_prompt("a blue cube", "cpu", 1, False)[0][0]
    assert torch.allclose(pos[0], red) and torch.allclose(pos[7], blue)
    assert torch.allclose(pos[3], torch.lerp(red, blue, 3 / 7), atol=1e-6)


def test_long_clip_needs_only_one_window_of_memory(store):
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    net = store.controlnet("depth")
    largest = {}

    def record(module, args, output):
        tensors = output if isinstance(output, tuple) else (output,)
        for t in tensors:
            if isinstance(t, torch.Tensor):
                largest[frames] = max(largest.get(frames, 0), t.numel())

    hooks = [m.register_forward_hook(record) for m in list(pipe.unet.modules()) + list(net.modules())]
    try:
        for frames in (16, 64):
            guide = torch.rand((frames, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(1))
            out = run(
                pipe,
                frames,
                steps=1,
                controls=[Control(net, guide, 1.0)],
                context=ContextWindows(length=16, overlap=4, mode="unet"),
            )
            assert out.shape == (frames, SIZE, SIZE, 3)
    finally:
        for h in hooks:
            h.remove()
    assert largest[64] == largest[16], largest


def test_windows_run_the_whole_unet_and_change_with_overlap(store):
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    windows_seen = []
    a = run(
        pipe,
        40,
        context=ContextWindows(length=16, overlap=4, mode="unet"),
        on_window=lambda w, idx: windows_seen.append(idx),
    )
    b = run(pipe, 40, context=ContextWindows(length=16, overlap=8, mode="unet"))
    assert windows_seen[:3] == [list(range(0, 16)), list(range(12, 28)), list(range(24, 40))]
    assert not np.array_equal(a, b)
    looped = run(pipe, 40, context=ContextWindows(length=16, overlap=4, loop=True, mode="unet"))
    assert looped.shape == a.shape and not np.array_equal(a, looped)


def test_one_window_equals_no_windows(store):
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    assert np.array_equal(run(pipe, 8), run(pipe, 8, context=ContextWindows(length=16, overlap=4, mode="unet")))


def test_per_window_lora_schedule_reaches_the_adapters(store):
    pipe = store.pipeline("sd15", "v2")
    schedule = [[("motion_lora", "pan_left", 1.0)], [("motion_lora", "zoom_in", 0.5)]]
    store.set_loras(pipe, schedule[0] + [("motion_lora", "zoom_in", 0.0)])
    layer = next(
        m
        for n, m in pipe.unet.named_modules()
        if n.endswith("motion_modules.0.transformer_blocks.0.attn1.to_q") and hasattr(m, "scaling")
    )
    seen = []
    hook = layer.register_forward_pre_hook(lambda m, args: seen.append({a: m.scaling[a] for a in m.active_adapters}))
    try:
        run(
            pipe,
            24,
            steps=1,
            context=ContextWindows(length=16, overlap=4, mode="unet"),
            on_window=lambda w, idx: store.set_loras(pipe, schedule[w]),
        )
    finally:
        hook.remove()
        store.set_loras(pipe, [])
    by_window = [{k.split("__")[1]: v for k, v in s.items()} for s in seen]
    assert by_window[0]["pan_left"] > 0 and "zoom_in" not in by_window[0]
    assert by_window[1]["zoom_in"] > 0 and "pan_left" not in by_window[1]
    assert by_window[1]["zoom_in"] == pytest.approx(by_window[0]["pan_left"] * 0.5)


def test_seam_score_sees_jumps_at_window_boundaries():
    from tests.support.metrics import seam_score

    windows = context_windows(40, 16, 4, loop=False)  # starts 0, 12, 24
    smooth = np.stack([np.full((4, 4, 3), f, dtype=np.float64) for f in range(40)])
    assert seam_score(smooth, windows) == pytest.approx(1.0)
    jumpy = smooth.copy()
    for start in (12, 24):
        jumpy[start:] += 10.0  # a jump into each window's first frame
    assert seam_score(jumpy, windows) > 3.0
    with pytest.raises(ValueError):
        seam_score(smooth[:10], context_windows(10, 16, 4, loop=False))


# --- mode "temporal": only the motion modules see windows ---------------------------------------------------------


def test_temporal_windows_with_one_window_equal_the_plain_pipeline(store):
    """One window covering the clip: the wrapped model computes exactly what the unwrapped one does, ControlNet
    and classifier-free guidance included; in frame chunks smaller than the clip, the same up to rounding."""
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    net = store.controlnet("depth")
    guide = torch.rand((8, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(1))
    plain = run(pipe, 8, controls=[Control(net, guide, 1.0)])
    whole = run(
        pipe,
        8,
        controls=[Control(net, guide, 1.0)],
        context=ContextWindows(length=16, overlap=4, mode="temporal", chunk=16),
    )
    assert np.array_equal(plain, whole)
    chunked = run(
        pipe,
        8,
        controls=[Control(net, guide, 1.0)],
        context=ContextWindows(length=16, overlap=4, mode="temporal", chunk=3),
    )
    assert np.abs(plain.astype(int) - chunked.astype(int)).max() <= 1


def test_temporal_windows_reach_only_the_motion_modules_and_restore_the_model(store):
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    motion = [m for n, m in pipe.unet.named_modules() if type(m).__name__ == "AnimateDiffTransformer3D"]
    resnet = next(m for m in pipe.unet.modules() if type(m).__name__ == "ResnetBlock2D")
    frames_seen, rows_seen = [], []
    hooks = [
        motion[0]
        .transformer_blocks[0]
        .register_forward_pre_hook(
            lambda m, args, kw: frames_seen.append(kw["hidden_states"].shape[1]), with_kwargs=True
        ),
        resnet.conv1.register_forward_pre_hook(lambda m, args: rows_seen.append(args[0].shape[0])),
    ]
    try:
        out = run(pipe, 40, steps=1, context=ContextWindows(length=16, overlap=4, mode="temporal", chunk=8))
    finally:
        for h in hooks:
            h.remove()
    assert out.shape == (40, SIZE, SIZE, 3)
    assert set(frames_seen) == {16}, "the motion module attends over one window of frames"
    assert len(frames_seen) == len(context_windows(40, 16, 4, False))
    assert sum(rows_seen) == 2 * 40 and max(rows_seen) == 2 * 8, "per-frame layers see each frame once, in chunks"
    assert all("forward" not in vars(m) for m in pipe.unet.modules()), "the wrappers are removed after the run"
    looped = run(pipe, 40, steps=1, context=ContextWindows(length=16, overlap=4, loop=True, mode="temporal"))
    assert not np.array_equal(out, looped)


def test_temporal_windows_keep_working_memory_to_one_chunk(store):
    """The largest tensor any layer produces does not grow with the clip; what grows is only the activations the
    UNet passes between its blocks (and keeps for its skip connections), a few per frame. From the second step on,
    a deeper layer (fewer pixels per image) takes more images per call, within that same largest tensor."""
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    net = store.controlnet("depth")
    largest = {}
    owner = {m: name for name, model in (("unet", pipe.unet), ("controlnet", net)) for m in model.modules()}
    inner = [m for m in owner if not list(m.children())]
    deep = pipe.unet.down_blocks[-1].resnets[0].conv1
    images = []

    def record(module, args, output):
        tensors = output if isinstance(output, tuple) else (output,)
        for t in tensors:
            if isinstance(t, torch.Tensor):
                largest[owner[module], *key] = max(largest.get((owner[module], *key), 0), t.numel())

    hooks = [m.register_forward_hook(record) for m in inner]
    hooks.append(deep.register_forward_pre_hook(lambda m, args: images.append(args[0].shape[0])))
    try:
        for key in ((64, 1), (16, 2), (64, 2)):  # one step: every layer in chunks of `rows`
            frames, steps = key
            guide = torch.rand((frames, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(1))
            run(
                pipe,
                frames,
                steps=steps,
                controls=[Control(net, guide, 1.0)],
                context=ContextWindows(length=16, overlap=4, mode="temporal", chunk=8),
            )
    finally:
        for h in hooks:
            h.remove()
    for model in ("unet", "controlnet"):
        assert largest[model, 64, 2] == largest[model, 16, 2] == largest[model, 64, 1], largest
    assert max(images) > 2 * 8, "a deeper layer takes more images per call than chunks of 8 frames (x2, guidance)"


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("windows_per_call", [1, 3])
def test_temporal_windows_fuse_each_windows_motion_output_with_its_table_weights(store, loop, windows_per_call):
    """Several windows (a looping clip's last ones wrap to the first frames): the wrapped motion module returns,
    for every frame, the table-weighted sum of the unwrapped module's outputs on each window holding it."""
    from server.engine.temporal_windows import TemporalWindows

    pipe = store.pipeline("sd15", "v2")
    motion = next(m for m in pipe.unet.modules() if type(m).__name__ == "AnimateDiffTransformer3D")
    frames, batch, length = 30, 2, 16
    windows = context_windows(frames, length, 4, loop)
    table = fusion_table(frames, windows, "pyramid").float()
    channels = motion.proj_in.in_features
    x = torch.randn((batch, frames, channels, 4, 4), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = torch.zeros_like(x)
        for w, idx in enumerate(windows):
            y = motion(x[:, idx].reshape(-1, channels, 4, 4), num_frames=length).reshape(batch, length, channels, 4, 4)
            expected[:, idx] += y * table[w, idx].reshape(1, length, 1, 1, 1)
        with TemporalWindows(pipe.unet, windows, table, rows=windows_per_call * batch * length):
            fused = motion(x.reshape(-1, channels, 4, 4), num_frames=frames).reshape(x.shape)
    assert len(windows) > 2 and (not loop or any(idx[0] > idx[-1] for idx in windows))
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-6)
