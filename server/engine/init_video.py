"""Video-to-video: denoising starts from the VAE latents of uploaded frames (the Blender render), like img2img.

The first (1 − strength) of the schedule is skipped and the encoded frames are noised to the first kept timestep
with the seed's noise (the same draw text-to-video starts from), so strength 0 runs no step at all (the frames come
back through the VAE) and strength near 1 starts from almost pure noise. Strength 1 itself never comes here: the
job is text-to-video with the same seed, bit for bit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class InitVideo:
    """Frames float (frames, 3, H, W) in [0, 1] that denoising starts from, at `strength` (0..1)."""

    images: torch.Tensor
    strength: float

    @property
    def active(self) -> bool:
        return self.strength < 1.0


def frames_sha256(folder: Path, field: str, count: int) -> str:
    """One sha256 over the uploaded frames' files (<field>_0001.png …) in frame order: which render was used."""
    digest = hashlib.sha256()
    for i in range(count):
        digest.update((folder / f"{field}_{i + 1:04d}.png").read_bytes())
    return digest.hexdigest()


def kept_steps(steps: int, strength: float) -> int:
    """How many of `steps` denoising steps a strength runs: diffusers' img2img rule, int(steps · strength)."""
    return min(int(steps * strength), steps)


def encode(vae, images: torch.Tensor, chunk: int = 4) -> torch.Tensor:
    """(frames, 3, H, W) in [0, 1] -> (1, 4, frames, h, w) latents, scaled like the denoiser's: the distribution's
    mode (not a sample, so reproducible), a few frames per VAE call so memory stays that of one chunk."""
    device, dtype = vae.device, vae.dtype
    parts = [
        vae.encode(2 * images[s : s + chunk].to(device=device, dtype=dtype) - 1).latent_dist.mode()
        for s in range(0, images.shape[0], chunk)
    ]
    return (torch.cat(parts) * vae.config.scaling_factor).transpose(0, 1)[None]


def truncate(scheduler, steps: int, strength: float) -> torch.Tensor:
    """The kept timesteps after `scheduler.set_timesteps(steps)`; schedulers that count their steps by index (Euler,
    DPM++, LCM) are told where the run begins, as diffusers' img2img pipelines do."""
    skip = (steps - kept_steps(steps, strength)) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(skip)
    return scheduler.timesteps[skip:]


def schedule(scheduler, steps: int, init: InitVideo | None, device) -> torch.Tensor:
    """The timesteps a run denoises: all of them, or with video-to-video the ones its strength keeps. Sets the
    scheduler's state afresh, so it also starts a FreeInit iteration over."""
    scheduler.set_timesteps(steps, device=device)
    return scheduler.timesteps if init is None else truncate(scheduler, steps, init.strength)


def start_latents(
    scheduler, noise: torch.Tensor, encoded: torch.Tensor | None, timesteps: torch.Tensor
) -> torch.Tensor:
    """The latents denoising starts from: text-to-video, the noise at the scheduler's initial sigma (what
    diffusers' prepare_latents computes); video-to-video, the encoded frames noised to the first kept timestep (with
    no step kept: the encoded frames themselves)."""
    if encoded is None:
        return noise * scheduler.init_noise_sigma
    if len(timesteps) == 0:
        return encoded
    return scheduler.add_noise(encoded, noise, timesteps[:1])
