"""A1111's prompt editing in the denoising loop, on the tiny models: an edited job follows the first prompt exactly up
to its switch step and leaves it after (with CFG, prompt travel, context windows in both modes, a ControlNet and an
IP-Adapter reference); the text each prediction sees is the schedule's, restarted by each FreeInit iteration and
counted over the steps that run in video-to-video; an edit that changes nothing is bit-identical to no edit; a
LoRA's text encoder and UNet weights apart (A1111's <lora:NAME:TE:UNET>)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import SIZE

from server.engine.conditioning import Control
from server.engine.free_init import FreeInit
from server.engine.init_video import InitVideo
from server.engine.references import Reference
from server.engine.text_encoding import prompt_encoder
from server.engine.windows import ContextWindows

A, B = "a man walking", "a dog running"
EDITED = f"[{A}:{B}:0.5]"  # at 4 steps: "a" at step indices 0-2 (A1111: index <= 2), "b" at 3


def run(pipe, store, steps=4, frames=4, **kw):
    """(frames, x0 of every step) of one generation."""
    seen = []
    args = dict(
        prompt=A,
        negative_prompt="blurry",
        num_frames=frames,
        height=SIZE,
        width=SIZE,
        steps=steps,
        guidance=7.5,
        generator=torch.Generator().manual_seed(3),
        on_step=lambda i, n, x0: seen.append(x0.clone()),
        text=prompt_encoder(pipe, store.config, 1),
    )
    args.update(kw)
    return pipe.generate(**args), seen


def test_an_edit_follows_the_first_prompt_to_its_step_then_the_second(pipe, store):
    edited, steps_edited = run(pipe, store, prompt=EDITED)
    pure_a, steps_a = run(pipe, store, prompt=A)
    pure_b, _ = run(pipe, store, prompt=B)
    for i in range(3):
        assert torch.equal(steps_edited[i], steps_a[i]), i
    assert not torch.equal(steps_edited[3], steps_a[3])
    assert not np.array_equal(edited, pure_a) and not np.array_equal(edited, pure_b)


def test_an_edit_that_changes_nothing_is_bit_identical(pipe, store):
    """The per-step path with the same text at every step computes what the plain prompt computes."""
    same, _ = run(pipe, store, prompt=f"[{A}:{A}:0.5]", negative_prompt="[blurry|blurry]")
    plain, _ = run(pipe, store)
    assert np.array_equal(same, plain)


@pytest.mark.parametrize("mode", ["unet", "temporal"])
def test_edits_with_travel_cfg_windows_a_controlnet_and_a_reference(pipe, store, mode):
    frames = 6
    adapter, encoder = store.ip_adapter("ip_adapter")
    image = np.random.default_rng(4).uniform(0, 255, (32, 32, 3)).astype(np.uint8)
    guides = torch.rand(frames, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))

    def job(first_key, negative):
        return run(
            pipe,
            store,
            frames=frames,
            negative_prompt=negative,
            prompt_keys=[(0, first_key), (5, "(a puppet:1.2) dancing")],
            controls=[Control(store.controlnet("depth"), guides, 0.8)],
            references=[Reference(adapter, encoder, image, 0.6)],
            context=ContextWindows(length=4, overlap=2, mode=mode),
        )

    edited, steps_edited = job(EDITED, "[blurry::2]")
    pure_a, steps_a = job(A, "blurry")
    for i in range(3):
        assert torch.equal(steps_edited[i], steps_a[i]), i
    assert not torch.equal(steps_edited[3], steps_a[3])
    assert not np.array_equal(edited, pure_a)


def _texts_seen(pipe, store, **kw):
    """Which of A and B the positive embeddings of each UNet call were (guidance 1: the positive alone)."""
    text = prompt_encoder(pipe, store.config, 1)
    want = {t: text.encode(t)[0] for t in (A, B)}
    seen = []

    def record(module, args, kwargs):
        hidden = kwargs["encoder_hidden_states"]
        seen.append(next(t for t, e in want.items() if all(torch.equal(h, e) for h in hidden)))

    hook = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        run(pipe, store, guidance=1.0, frames=2, **kw)
    finally:
        hook.remove()
    return seen


def test_each_free_init_iteration_restarts_the_schedule(pipe, store):
    seen = _texts_seen(pipe, store, prompt=EDITED, free_init=FreeInit(iterations=2))
    assert seen == [A, A, A, B] * 2


def test_video_to_video_counts_the_steps_that_run(pipe, store):
    """A1111's img2img: `when` over all steps, the step index from 0 at the first step that runs."""
    init = InitVideo(torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2)), 0.75)
    assert _texts_seen(pipe, store, prompt=f"[{A}:{B}:1]", init=init) == [A, A, B]  # 3 of 4 steps run
    assert _texts_seen(pipe, store, prompt=f"[{A}|{B}]", steps=3) == [A, A, B]


def test_a_lora_weights_text_encoder_and_unet_apart(pipe, store):
    def encoded(loras):
        store.set_loras(pipe, loras)
        return prompt_encoder(pipe, store.config, 1).encode(A)

    def predicted(loras):
        store.set_loras(pipe, loras)
        return run(pipe, store, steps=1, frames=2, guidance=1.0)[0]

    try:
        none = encoded([])
        assert torch.equal(encoded([("lora", "style", [0.0, 0.8])]), none)  # te 0: the text encoder as without
        assert not torch.equal(encoded([("lora", "style", [0.8, 0.8])]), none)
        assert torch.equal(encoded([("lora", "style", [0.8, 0.0])]), encoded([("lora", "style", 0.8)]))
        unet_only = predicted([("lora", "style", [0.0, 0.8])])
        assert not np.array_equal(unet_only, predicted([]))
        assert np.array_equal(predicted([("lora", "style", [0.8, 0.8])]), predicted([("lora", "style", 0.8)]))
    finally:
        store.set_loras(pipe, [])
