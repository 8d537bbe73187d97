"""AnimateDiff with dense ControlNets and SparseCtrl keyframes in one denoising loop.

diffusers has a pipeline for ControlNets (AnimateDiffControlNetPipeline) and one for SparseCtrl
(AnimateDiffSparseControlNetPipeline) but none for both at once. This pipeline reuses AnimateDiffPipeline's
latent preparation and LoRA loading, encodes prompts as A1111 does (engine/text_encoding.py; prompt editing step by
step, engine/prompt_steps.py), and runs its own loop in which the residuals of every ControlNet and of SparseCtrl are
summed before they reach the motion UNet.
With only dense ControlNets (and a plain prompt of up to 75 tokens) it computes exactly what
AnimateDiffControlNetPipeline computes (a test pins that).

With CameraCtrl (engine/cameractrl.py) the pose features of each context window condition the motion UNet's
temporal attention in the same loop. Video-to-video (engine/init_video.py) changes where the loop starts, FreeInit
(engine/free_init.py) runs it again from a re-initialised start, and the motion scale (engine/motion_scale.py)
scales the motion modules' contribution, per window with context windows.

The loop reports each step (with the predicted clean latents, for previews) and each final frame as soon as it
is decoded, so the server can stream them; raising from a callback stops the run within one step.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AnimateDiffPipeline
from diffusers.utils.torch_utils import randn_tensor

from . import free_init as free_init_
from .conditioning import CameraPoses, Conditioning, Control, Keyframes, control_active
from .init_video import InitVideo, encode, schedule, start_latents
from .motion_scale import MotionScale, window_scales
from .prompt_steps import text_conditioning
from .references import ImageReferences, Reference
from .temporal_windows import TemporalWindows
from .text_encoding import PromptEncoder
from .windows import WINDOW_MODES, ContextWindows, context_windows, fusion_table


@dataclass
class _Loop:
    """The schedule and windows of one generation and its callbacks."""

    timesteps: torch.Tensor
    windows: list[list[int]]
    table: torch.Tensor  # (windows, frames) fusion weights
    extra: dict
    on_window: Callable[[int, list[int]], None] | None
    on_step: Callable[[int, int, torch.Tensor], None] | None
    iterations: int = 1  # FreeInit runs the whole schedule this many times; steps are reported over all of them
    iteration: int = 0

    def step(self, i, t, noise, latents, scheduler):
        out = scheduler.step(noise, t, latents, **self.extra)
        if self.on_step is not None:
            x0 = getattr(out, "pred_original_sample", None)
            n = len(self.timesteps)
            self.on_step(self.iteration * n + i, self.iterations * n, out.prev_sample if x0 is None else x0)
        return out.prev_sample


class GuidedAnimateDiffPipeline(AnimateDiffPipeline):
    """AnimateDiffPipeline whose `generate` takes ControlNets, SparseCtrl keyframes, context windows and prompt
    keys per call."""

    @torch.no_grad()
    def generate(
        self,
        *,
        prompt: str,
        negative_prompt: str = "",
        num_frames: int = 16,
        height: int = 512,
        width: int = 512,
        steps: int = 25,
        guidance: float = 7.5,
        generator: torch.Generator | None = None,
        controls: list[Control] = (),
        keyframes: Keyframes | None = None,
        context: ContextWindows | None = None,
        prompt_keys: list[tuple[int, str]] = (),
        on_window: Callable[[int, list[int]], None] | None = None,
        on_step: Callable[[int, int, torch.Tensor], None] | None = None,
        on_frame: Callable[[int, np.ndarray], None] | None = None,
        decode_chunk: int = 4,
        camera: CameraPoses | None = None,
        references: list[Reference] = (),
        init: InitVideo | None = None,
        free_init: free_init_.FreeInit | None = None,
        motion_scale: float = 1.0,
        text: PromptEncoder | None = None,
    ) -> np.ndarray:
        """Generate a clip; returns (frames, H, W, 3) uint8.

        prompt_keys: (frame index, prompt) pairs for prompt travel; `prompt` alone when empty.
        Callbacks: on_window(window, frame indices) before each window's prediction (per-window LoRA weights),
        on_step(i, n, x0), on_frame(index, rgb).
        camera: CameraCtrl; each window's poses are encoded once, before the first step.
        references: IP-Adapter image references; their images are encoded once, before the first step.
        init: video-to-video; at strength 1 it is ignored (text-to-video, bit for bit).
        free_init: FreeInit iterations (1: as without). motion_scale: the motion modules' contribution in every
        window, unless context.motion_scales gives one per window.
        text: how prompts become embeddings (A1111's syntax, chunks, clip skip, embeddings); default: clip skip 1,
        no embeddings.
        """
        device = self._execution_device
        cfg = guidance > 1.0
        batch = 2 if cfg else 1
        keys = list(prompt_keys) or [(0, prompt)]
        text = text or PromptEncoder(self.tokenizer, self.text_encoder)
        # (F, 77·chunks, dim) and (1, 77·chunks, dim) at the first step; per step when a prompt is edited
        positive, negative, text_steps = text_conditioning(
            text, keys, negative_prompt if cfg else None, num_frames, steps
        )

        init = init if init is not None and init.active else None
        timesteps = schedule(self.scheduler, steps, init, device)
        scale = self.vae_scale_factor
        shape = (1, self.unet.config.in_channels, num_frames, height // scale, width // scale)
        # prepare_latents' own draw: text-to-video starts from noise · init_noise_sigma, bit for bit as diffusers
        noise = randn_tensor(shape, generator=generator, device=device, dtype=positive.dtype)
        frames_in = None if init is None else encode(self.vae, init.images, decode_chunk).to(positive.dtype)
        latents = start_latents(self.scheduler, noise, frames_in, timesteps)
        extra = self.prepare_extra_step_kwargs(generator, 0.0)
        images = [c.images.to(device=device, dtype=c.model.dtype) for c in controls]
        sparse = self._sparse_inputs(keyframes, num_frames, batch, device) if keyframes else None
        # No context asked for: the whole clip is one window through the plain UNet, nothing wrapped.
        context = context or ContextWindows(length=num_frames, overlap=0, mode="unet")
        if context.mode not in WINDOW_MODES:
            raise ValueError(f"unknown context mode {context.mode!r}; use one of {', '.join(WINDOW_MODES)}")
        if context.mode == "temporal" and getattr(self.unet, "_marionette_frames_hook", None) is not None:
            # v1's original spatial norms take statistics over a window's frames (engine/motion_parity.py): they
            # cannot run in frame chunks, so the whole UNet per window.
            context = dataclasses.replace(context, mode="unet")
        windows = context_windows(num_frames, context.length, context.overlap, context.loop)
        table = fusion_table(num_frames, windows, context.fuse).to(device, latents.dtype)
        cond = Conditioning(positive, negative, guidance, controls, images, sparse, keyframes, text_steps=text_steps)
        cond.motion_scales = window_scales(motion_scale, context.motion_scales, len(windows))
        # No step kept (strength 0): nothing to re-initialise either.
        iterations = 1 if free_init is None or not len(timesteps) else free_init.iterations
        loop = _Loop(timesteps, windows, table, extra, on_window, on_step, iterations)
        with contextlib.ExitStack() as installed:
            if references:
                cond.references = ImageReferences(
                    list(references), num_frames, positive.shape[1], device, positive.dtype
                )
                installed.callback(cond.references.install(self.unet).remove)
            if camera is not None:
                cond.camera = camera
                cond.poses = [camera.model.encode(camera.window_input(idx)) for idx in windows]
                installed.callback(camera.model.install(self.unet).remove)
            if context.mode == "temporal":
                rows = batch * context.chunk
                denoise = lambda x: self._denoise_temporal(x, loop, cond, rows)  # noqa: E731
            else:
                if cond.motion_scales is not None:
                    cond.motion = installed.enter_context(MotionScale(self.unet, cond.motion_scales))
                denoise = lambda x: self._denoise(x, loop, cond)  # noqa: E731
            latents = denoise(latents)
            for k in range(1, iterations):  # FreeInit
                loop.iteration = k
                loop.timesteps = schedule(self.scheduler, steps, init, device)  # fresh state (DPM++ has a history)
                fresh = randn_tensor(shape, generator=generator, device=device, dtype=positive.dtype)
                latents = free_init_.restart(
                    self.scheduler, loop.timesteps, latents, noise, fresh, frames_in, free_init
                )
                latents = denoise(latents)
        return self.decode(latents, on_frame, decode_chunk)

    def _denoise(self, latents, loop: _Loop, cond: Conditioning):
        """The denoising loop of mode "unet" (and of no windows): the whole UNet per window, outputs fused."""
        batch = cond.batch
        for i, t in enumerate(loop.timesteps):
            fused = torch.zeros_like(latents)
            for w, idx in enumerate(loop.windows):
                if loop.on_window is not None:
                    loop.on_window(w, idx)
                if cond.motion is not None:
                    cond.motion.use(w)
                noise = self._predict(
                    latents[:, :, idx],
                    t,
                    i,
                    len(loop.timesteps),
                    cond.embeds(i, idx),
                    cond,
                    [torch.cat([im[idx]] * batch) for im in cond.images],
                    None if cond.sparse is None else (cond.sparse[0][:, :, idx], cond.sparse[1][:, :, idx]),
                    poses=cond.poses[w : w + 1],
                    frames=idx,
                )
                fused[:, :, idx] += noise * loop.table[w, idx][None, None, :, None, None]
            latents = loop.step(i, t, fused, latents, self.scheduler)
        return latents

    def _denoise_temporal(self, latents, loop: _Loop, cond: Conditioning, rows: int):
        """The denoising loop of mode "temporal": one prediction per step over all frames, the motion modules
        windowed inside it (TemporalWindows). on_window is called once per window and step before the prediction;
        per-window LoRA weights cannot differ inside one prediction, so the caller uses mode "unet" for those."""
        frames = latents.shape[2]
        embeds = cond.embeds(0)
        control_images = [torch.cat([im] * cond.batch) for im in cond.images]
        models = [self.unet] + ([cond.keyframes.model] if cond.keyframes is not None else [])
        with contextlib.ExitStack() as stack:
            for model in models:
                if model is self.unet:  # SparseCtrl's motion modules: neither scaled nor camera-conditioned
                    scales, select = cond.motion_scales, None if cond.camera is None else cond.camera.model.use
                else:
                    scales, select = None, None
                stack.enter_context(TemporalWindows(model, loop.windows, loop.table, rows, scales, select))
            for i, t in enumerate(loop.timesteps):
                if loop.on_window is not None:
                    for w, idx in enumerate(loop.windows):
                        loop.on_window(w, idx)
                if cond.text_steps is not None:
                    embeds = cond.embeds(i)
                noise = self._predict(
                    latents,
                    t,
                    i,
                    len(loop.timesteps),
                    embeds,
                    cond,
                    control_images,
                    cond.sparse,
                    poses=cond.poses,
                    rows=rows,
                    frames=list(range(frames)),
                )
                latents = loop.step(i, t, noise, latents, self.scheduler)
        return latents

    def _predict(
        self,
        latents,
        t,
        step,
        steps,
        embeds,
        cond: Conditioning,
        control_images,
        sparse,
        poses=(),
        rows=None,
        frames=None,
    ):
        """Guided noise prediction for the frames of one window, ControlNet and SparseCtrl residuals summed.
        `frames`: the clip's frame indices of these latents; `poses`: CameraCtrl's features of the windows they
        belong to. ControlNets and SparseCtrl see the text tokens only."""
        model_in = torch.cat([latents] * 2) if cond.cfg else latents
        model_in = self.scheduler.scale_model_input(model_in, t)
        down, mid, flat = None, None, None
        for c, image in zip(cond.controls, control_images):
            if not control_active(step, steps, c.start, c.end):
                continue
            if flat is None:  # (b, c, f, h, w) -> (b*f, c, h, w), frame-major as the ControlNet expects
                flat = model_in.transpose(1, 2).reshape(-1, model_in.shape[1], *model_in.shape[3:])
            d, m = _controlnet(c, flat, t, embeds, image, rows)
            down, mid = _add_residuals(down, mid, d, m)
        if sparse is not None:
            keys, mask = sparse
            d, m = cond.keyframes.model(
                model_in,
                t,
                encoder_hidden_states=embeds,
                controlnet_cond=keys,
                conditioning_mask=mask,
                conditioning_scale=cond.keyframes.scale,
                return_dict=False,
            )
            down, mid = _add_residuals(down, mid, d, m)
        conditioning = (
            contextlib.nullcontext()
            if cond.camera is None
            else cond.camera.model.conditioning(poses, cond.camera.scale, model_in.shape[0])
        )
        with conditioning:
            if cond.references is not None:
                embeds = cond.references.extend(embeds, frames, step, steps)
            noise = self.unet(
                model_in,
                t,
                encoder_hidden_states=embeds,
                down_block_additional_residuals=down,
                mid_block_additional_residual=mid,
            ).sample
        if cond.cfg:
            uncond, text = noise.chunk(2)
            noise = uncond + cond.guidance * (text - uncond)
        return noise

    def _sparse_inputs(self, keyframes: Keyframes, num_frames: int, batch: int, device):
        """Keyframe conditioning and mask, (batch, C, F, h, w) and (batch, 1, F, h, w)."""
        model = keyframes.model
        images = keyframes.images.to(device=device, dtype=self.vae.dtype)
        if model.config.use_simplified_condition_embedding:
            # RGB SparseCtrl conditions on VAE latents. The distribution's mode, not a sample: reproducible.
            cond = self.vae.encode(2 * images - 1).latent_dist.mode() * self.vae.config.scaling_factor
        else:
            cond = images
        cond = cond.to(model.dtype)
        full = torch.zeros((1, cond.shape[1], num_frames, *cond.shape[2:]), dtype=model.dtype, device=device)
        mask = torch.zeros((1, 1, num_frames, *cond.shape[2:]), dtype=model.dtype, device=device)
        full[0, :, keyframes.indices] = cond.transpose(0, 1)
        mask[:, :, keyframes.indices] = 1
        return torch.cat([full] * batch), torch.cat([mask] * batch)

    def decode(self, latents, on_frame=None, chunk: int = 4) -> np.ndarray:
        """Decode (1, 4, F, h, w) latents a few frames at a time, handing each frame on as soon as it exists."""
        latents = latents[0].transpose(0, 1) / self.vae.config.scaling_factor  # (F, 4, h, w)
        frames = []
        for start in range(0, latents.shape[0], chunk):
            images = self.vae.decode(latents[start : start + chunk].to(self.vae.dtype)).sample
            images = ((images.float() / 2 + 0.5).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            for k, image in enumerate(images):
                if on_frame is not None:
                    on_frame(start + k, image)
                frames.append(image)
        return np.stack(frames)


def _controlnet(c: Control, flat, t, embeds, cond, rows=None):
    """A dense ControlNet's residuals for (batch*frames) images, `rows` images per call when given (each image is
    independent of the others, so the chunks join exactly)."""
    n = flat.shape[0]
    step = n if not rows else rows
    parts = [
        c.model(
            flat[s : s + step],
            t,
            encoder_hidden_states=embeds[s : s + step],
            controlnet_cond=cond[s : s + step],
            conditioning_scale=c.scale,
            return_dict=False,
        )
        for s in range(0, n, step)
    ]
    if len(parts) == 1:
        return parts[0]
    return [torch.cat(r) for r in zip(*(p[0] for p in parts))], torch.cat([p[1] for p in parts])


def _add_residuals(down, mid, new_down, new_mid):
    if down is None:
        return list(new_down), new_mid
    return [a + b for a, b in zip(down, new_down)], mid + new_mid
