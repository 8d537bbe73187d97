"""FreeInit (Wu et al. 2023, TianxingWu/FreeInit): the whole denoising runs again from a start whose low
spatio-temporal frequencies are those of the previous result, diffused back to the start timestep.

As in the original (`AnimationFreeInitPipeline`, `freeinit_utils.freq_mix_3d`): after each full denoising the result
is diffused to the start timestep with the SAME initial noise; its low frequencies (3D FFT over frames × h × w, the
filter's mask) are kept and the high frequencies come from FRESH random noise (the original's `z_rand`), not from
the initial noise. Two generalisations of the original, which ran text-to-video with DDIM only:

- the start is the schedule's first kept timestep (text-to-video: 999, what the original diffuses to; video-to-video:
  the first timestep its strength keeps), reached with the scheduler's own `add_noise`;
- the high frequencies come from the start latents the job would have with the fresh noise (text-to-video: the
  noise times the scheduler's initial sigma, which is 1 for DDIM as in the original; video-to-video: the init
  frames' latents noised with it), so Euler-type schedulers get latents of their own scale.

The original's coarse-to-fine "fast sampling" is not offered: every iteration runs the full schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .init_video import start_latents

BUTTERWORTH_ORDER = 4  # the original's default n


@dataclass
class FreeInit:
    iterations: int = 3
    filter: str = "butterworth"
    spatial_cutoff: float = 0.25
    temporal_cutoff: float = 0.25


def low_pass(shape: tuple[int, int, int], kind: str, spatial: float, temporal: float) -> torch.Tensor:
    """The (T, H, W) low-pass mask of the original's filters, in fftshift order (DC at index (T//2, H//2, W//2)).

    The normalised distance from DC is ((d_s/d_t)·(2t/T−1))² + (2h/H−1)² + (2w/W−1)², so the temporal cutoff
    stretches the time axis relative to the spatial ones."""
    frames, height, width = shape

    def axis(n):
        return 2 * torch.arange(n, dtype=torch.float64) / n - 1

    t, h, w = torch.meshgrid(axis(frames), axis(height), axis(width), indexing="ij")
    d2 = ((spatial / temporal) * t) ** 2 + h**2 + w**2
    if kind == "gaussian":
        mask = torch.exp(-d2 / (2 * spatial**2))
    elif kind == "butterworth":
        mask = 1 / (1 + (d2 / spatial**2) ** BUTTERWORTH_ORDER)
    elif kind == "ideal":
        mask = (d2 <= spatial * 2).double()  # the original's threshold, d_s·2 (not d_s²)
    elif kind == "box":
        mask = torch.zeros(shape, dtype=torch.float64)
        s, tt = round(int(height // 2) * spatial), round(frames // 2 * temporal)
        ct, ch, cw = frames // 2, height // 2, width // 2
        mask[ct - tt : ct + tt, ch - s : ch + s, cw - s : cw + s] = 1.0
    else:
        raise ValueError(f"unknown FreeInit filter {kind!r}; use butterworth, gaussian, ideal or box")
    return mask.float()


def mix(low_from: torch.Tensor, high_from: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """low_from's frequencies under `mask` plus high_from's outside it, over the last three axes (float32)."""
    dims = (-3, -2, -1)

    def spectrum(x):
        return torch.fft.fftshift(torch.fft.fftn(x.float(), dim=dims), dim=dims)

    mask = mask.to(low_from.device)
    mixed = spectrum(low_from) * mask + spectrum(high_from) * (1 - mask)
    return torch.fft.ifftn(torch.fft.ifftshift(mixed, dim=dims), dim=dims).real


def restart(scheduler, timesteps, result, initial_noise, fresh_noise, frames_in, settings: FreeInit) -> torch.Tensor:
    """The next iteration's start: the result diffused to the first kept timestep with the initial noise,
    low-passed, plus the high frequencies of the start latents made with the fresh noise (`frames_in`: the encoded
    init frames of video-to-video, or None). The scheduler has just been set to `timesteps` afresh."""
    mask = low_pass(tuple(result.shape[-3:]), settings.filter, settings.spatial_cutoff, settings.temporal_cutoff)
    diffused = scheduler.add_noise(result, initial_noise, timesteps[:1])
    return mix(diffused, start_latents(scheduler, fresh_noise, frames_in, timesteps), mask).to(result.dtype)
