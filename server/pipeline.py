"""AnimateDiff with dense ControlNets and SparseCtrl keyframes in one denoising loop.

diffusers has a pipeline for ControlNets (AnimateDiffControlNetPipeline) and one for SparseCtrl
(AnimateDiffSparseControlNetPipeline) but none for both at once. This pipeline reuses AnimateDiffPipeline's
prompt encoding, latent preparation and LoRA loading, and runs its own loop in which the residuals of every
ControlNet and of SparseCtrl are summed before they reach the motion UNet. With only dense ControlNets it computes
exactly what AnimateDiffControlNetPipeline computes (a test pins that).

The loop reports each step (with the predicted clean latents, for previews) and each final frame as soon as it
is decoded, so the server can stream them; raising from a callback stops the run within one step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AnimateDiffPipeline

# Linear map from SD1.5 latents to RGB: a cheap preview that needs no VAE decode.
_LATENT_RGB = torch.tensor([
    [0.298, 0.207, 0.208],
    [0.187, 0.286, 0.173],
    [-0.158, 0.189, 0.264],
    [-0.184, -0.271, -0.473],
])


@dataclass
class Control:
    """A dense ControlNet with its per-frame guide images, float (frames, 3, H, W) in [0, 1]."""
    model: torch.nn.Module
    images: torch.Tensor
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0


@dataclass
class Keyframes:
    """SparseCtrl RGB keyframes: images float (k, 3, H, W) in [0, 1] at 0-based frame indices."""
    model: torch.nn.Module
    images: torch.Tensor
    indices: list[int]
    scale: float = 1.0


def latent_preview(latents: torch.Tensor) -> np.ndarray:
    """(1, 4, F, h, w) latents -> (F, h, w, 3) uint8 through the linear latent-to-RGB map."""
    x = latents[0].float().permute(1, 2, 3, 0) @ _LATENT_RGB.to(latents.device)
    return ((x + 1) * 127.5).clamp(0, 255).byte().cpu().numpy()


def control_active(step: int, steps: int, start: float, end: float) -> bool:
    """Whether a ControlNet acts at `step`: the same rule as diffusers' control_guidance_start/end."""
    return not (step / steps < start or (step + 1) / steps > end)


class GuidedAnimateDiffPipeline(AnimateDiffPipeline):
    """AnimateDiffPipeline whose `generate` takes ControlNets and SparseCtrl keyframes per call."""

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
        on_step: Callable[[int, int, torch.Tensor], None] | None = None,
        on_frame: Callable[[int, np.ndarray], None] | None = None,
        decode_chunk: int = 4,
    ) -> np.ndarray:
        """Generate a clip; returns (frames, H, W, 3) uint8. Callbacks: on_step(i, n, x0), on_frame(index, rgb)."""
        device = self._execution_device
        cfg = guidance > 1.0
        pos, neg = self.encode_prompt(prompt, device, 1, cfg, negative_prompt)
        embeds = torch.cat([neg, pos]) if cfg else pos
        embeds = embeds.repeat_interleave(repeats=num_frames, dim=0)

        self.scheduler.set_timesteps(steps, device=device)
        timesteps = self.scheduler.timesteps
        latents = self.prepare_latents(1, self.unet.config.in_channels, num_frames, height, width,
                                       embeds.dtype, device, generator)
        extra = self.prepare_extra_step_kwargs(generator, 0.0)
        batch = 2 if cfg else 1

        control_inputs = []
        for c in controls:
            images = c.images.to(device=device, dtype=c.model.dtype)
            control_inputs.append(torch.cat([images] * batch) if cfg else images)
        sparse = self._sparse_inputs(keyframes, num_frames, batch, device) if keyframes else None

        for i, t in enumerate(timesteps):
            model_in = torch.cat([latents] * batch) if cfg else latents
            model_in = self.scheduler.scale_model_input(model_in, t)
            down, mid = None, None

            flat = None
            for c, cond in zip(controls, control_inputs):
                if not control_active(i, len(timesteps), c.start, c.end):
                    continue
                if flat is None:  # (b, c, f, h, w) -> (b*f, c, h, w), frame-major as the ControlNet expects
                    flat = model_in.transpose(1, 2).reshape(-1, *model_in.shape[1:2], *model_in.shape[3:])
                d, m = c.model(flat, t, encoder_hidden_states=embeds, controlnet_cond=cond,
                               conditioning_scale=c.scale, return_dict=False)
                down, mid = _add_residuals(down, mid, d, m)
            if sparse is not None:
                cond, mask = sparse
                d, m = keyframes.model(model_in, t, encoder_hidden_states=embeds, controlnet_cond=cond,
                                       conditioning_mask=mask, conditioning_scale=keyframes.scale,
                                       return_dict=False)
                down, mid = _add_residuals(down, mid, d, m)

            noise = self.unet(model_in, t, encoder_hidden_states=embeds,
                              down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
            if cfg:
                uncond, text = noise.chunk(2)
                noise = uncond + guidance * (text - uncond)
            out = self.scheduler.step(noise, t, latents, **extra)
            latents = out.prev_sample
            if on_step is not None:
                x0 = getattr(out, "pred_original_sample", None)
                on_step(i, len(timesteps), latents if x0 is None else x0)

        return self.decode(latents, on_frame, decode_chunk)

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
            images = self.vae.decode(latents[start:start + chunk].to(self.vae.dtype)).sample
            images = ((images.float() / 2 + 0.5).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            for k, image in enumerate(images):
                if on_frame is not None:
                    on_frame(start + k, image)
                frames.append(image)
        return np.stack(frames)


def _add_residuals(down, mid, new_down, new_mid):
    if down is None:
        return list(new_down), new_mid
    return [a + b for a, b in zip(down, new_down)], mid + new_mid
