"""The guided pipeline on tiny models: it computes what diffusers computes, and each conditioning matters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from server.engine.conditioning import Control, Keyframes, control_active, latent_preview
from server.engine.store import ModelStore
from server.loaders import ModelConfig

SIZE, FRAMES, STEPS = 64, 4, 3


@pytest.fixture(scope="module")
def store(tiny_models):
    return ModelStore(ModelConfig.load(tiny_models / "models.toml"), device="cpu", dtype="float32")


def guide_tensor(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((FRAMES, 3, SIZE, SIZE), generator=g)


def run(pipe, **kw):
    args = dict(
        prompt="a marionette",
        negative_prompt="blurry",
        num_frames=FRAMES,
        height=SIZE,
        width=SIZE,
        steps=STEPS,
        guidance=7.5,
        generator=torch.Generator().manual_seed(5),
    )
    args.update(kw)
    return pipe.generate(**args)


def test_dense_controlnets_match_diffusers_own_pipeline(store):
    from diffusers import AnimateDiffControlNetPipeline
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    nets = [store.controlnet("depth"), store.controlnet("normal")]
    guides = [guide_tensor(1), guide_tensor(2)]
    ours = run(pipe, controls=[Control(nets[0], guides[0], 0.8, 0.0, 1.0), Control(nets[1], guides[1], 0.5, 0.34, 1.0)])

    reference = AnimateDiffControlNetPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        motion_adapter=None,
        controlnet=MultiControlNetModel(nets),
        scheduler=pipe.scheduler,
    )
    reference.set_progress_bar_config(disable=True)
    to_pil = lambda t: [Image.fromarray((f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for f in t]  # noqa: E731
    theirs = reference(
        prompt="a marionette",
        negative_prompt="blurry",
        num_frames=FRAMES,
        height=SIZE,
        width=SIZE,
        num_inference_steps=STEPS,
        guidance_scale=7.5,
        conditioning_frames=[to_pil(g) for g in guides],
        controlnet_conditioning_scale=[0.8, 0.5],
        control_guidance_start=[0.0, 0.34],
        control_guidance_end=[1.0, 1.0],
        generator=torch.Generator().manual_seed(5),
        output_type="np",
    ).frames[0]
    theirs = (theirs * 255).round().astype(np.uint8)
    assert ours.shape == theirs.shape == (FRAMES, SIZE, SIZE, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_controlnet_weight_and_window_change_the_output(store):
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    net = store.controlnet("depth")
    plain = run(pipe)
    guided = run(pipe, controls=[Control(net, guide_tensor(1), 1.0)])
    zero = run(pipe, controls=[Control(net, guide_tensor(1), 0.0)])
    assert np.array_equal(plain, zero)
    assert not np.array_equal(plain, guided)


def test_control_window_follows_diffusers_rule():
    assert [control_active(i, 10, 0.0, 0.5) for i in range(10)] == [True] * 5 + [False] * 5
    assert [control_active(i, 4, 0.25, 1.0) for i in range(4)] == [False, True, True, True]


def test_sparsectrl_with_controlnet_runs_and_the_keyframe_matters(store):
    pipe = store.pipeline("sd15", "v3")
    store.set_loras(pipe, [])
    sparse = store.sparsectrl("rgb")
    control = Control(store.controlnet("depth"), guide_tensor(1), 1.0)
    key = torch.rand((1, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(9))
    with_key = run(pipe, controls=[control], keyframes=Keyframes(sparse, key, [0], 1.0))
    other_key = run(pipe, controls=[control], keyframes=Keyframes(sparse, 1 - key, [0], 1.0))
    without = run(pipe, controls=[control])
    assert with_key.shape == (FRAMES, SIZE, SIZE, 3)
    assert not np.array_equal(with_key, without)
    assert not np.array_equal(with_key, other_key)
    again = run(pipe, controls=[control], keyframes=Keyframes(sparse, key, [0], 1.0))
    assert np.array_equal(with_key, again), "keyframe encoding must be deterministic"


def test_motion_lora_weight_zero_is_none_and_nonzero_changes(store):
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    none = run(pipe)
    store.set_loras(pipe, [("motion_lora", "zoom_in", 0.0)])
    zero = run(pipe)
    store.set_loras(pipe, [("motion_lora", "zoom_in", 1.0)])
    one = run(pipe)
    store.set_loras(pipe, [("motion_lora", "zoom_in", 1.0), ("motion_lora", "pan_left", 0.7)])
    two = run(pipe)
    store.set_loras(pipe, [])
    off_again = run(pipe)
    assert np.array_equal(none, zero)
    assert not np.array_equal(none, one) and not np.array_equal(one, two)
    assert np.array_equal(none, off_again)


def test_original_format_files_give_the_same_frames_as_diffusers_twins(store):
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [("motion_lora", "zoom_in", 0.8)])
    diffusers_format = run(pipe)
    store.set_loras(pipe, [("motion_lora", "zoom_in-original", 0.8)])
    original_lora = run(pipe)
    assert np.array_equal(diffusers_format, original_lora)
    store.set_loras(pipe, [])
    folder = run(pipe)
    original_pipe = store.pipeline("sd15-single", "v2-original")
    store.set_loras(original_pipe, [])
    assert np.array_equal(folder, run(original_pipe))


def test_image_lora_changes_the_output(store):
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    plain = run(pipe)
    store.set_loras(pipe, [("lora", "style", 1.0)])
    styled = run(pipe)
    store.set_loras(pipe, [])
    assert not np.array_equal(plain, styled)
    assert np.array_equal(plain, run(pipe))


def test_frames_stream_one_by_one_and_steps_report_previews(store):
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    steps, frames = [], []
    out = run(
        pipe,
        on_step=lambda i, n, x0: steps.append((i, n, latent_preview(x0).shape)),
        on_frame=lambda i, rgb: frames.append((i, rgb.copy())),
        decode_chunk=3,
    )
    assert steps == [(i, STEPS, (FRAMES, SIZE // 8, SIZE // 8, 3)) for i in range(STEPS)]
    assert [i for i, _ in frames] == list(range(FRAMES))
    assert all(np.array_equal(rgb, out[i]) for i, rgb in frames)


def test_decode_chunk_size_does_not_change_frames(store):
    pipe = store.pipeline("sd15", "v2")
    latents = torch.randn((1, 4, FRAMES, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(3))
    a, b = pipe.decode(latents, chunk=1), pipe.decode(latents, chunk=FRAMES)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_every_scheduler_runs_with_the_published_settings(store):
    from server.engine.schedulers import make_scheduler
    from server.protocol import SCHEDULERS

    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    original = pipe.scheduler
    outputs = {}
    try:
        for name in SCHEDULERS:
            pipe.scheduler = make_scheduler(name, original.config)
            assert pipe.scheduler.config.beta_schedule == "linear" and pipe.scheduler.config.beta_end == 0.012
            outputs[name] = run(pipe, steps=2)
    finally:
        pipe.scheduler = original
    assert make_scheduler("euler_trailing").config.timestep_spacing == "trailing"
    assert make_scheduler("ddim").config.clip_sample is False
    assert all(o.shape == (FRAMES, SIZE, SIZE, 3) for o in outputs.values())
    assert not np.array_equal(outputs["ddim"], outputs["euler"])
