"""What one generation conditions its predictions on: the inputs' records (ControlNets, SparseCtrl keyframes,
CameraCtrl poses), the one `Conditioning` the denoising loops read, and the rules they share (a ControlNet's step
range, prompt travel, the latent preview)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .motion_scale import MotionScale
    from .references import ImageReferences

# Linear map from SD1.5 latents to RGB: a cheap preview that needs no VAE decode.
_LATENT_RGB = torch.tensor(
    [
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ]
)


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


@dataclass
class CameraPoses:
    """CameraCtrl conditioning (engine/cameractrl.py): the model, and for a window's frame indices the pose
    encoder's input, a (frames, 6, H, W) Plücker embedding relative to the window's first frame."""

    model: torch.nn.Module
    window_input: Callable[[list[int]], torch.Tensor]
    scale: float = 1.0


@dataclass
class Conditioning:
    """Everything one generation conditions each prediction on, prepared once before the loop."""

    positive: torch.Tensor  # (frames, tokens, dim) prompt embeddings, per frame for prompt travel (first step)
    negative: torch.Tensor | None  # (1, tokens, dim) (first step)
    guidance: float
    controls: list[Control]
    images: list[torch.Tensor]  # each control's guides on the device, (frames, 3, H, W)
    sparse: tuple[torch.Tensor, torch.Tensor] | None  # SparseCtrl (conditioning, mask), batch-expanded
    keyframes: Keyframes | None
    camera: CameraPoses | None = None
    poses: list[torch.Tensor] = dataclasses.field(default_factory=list)  # CameraCtrl features per window
    references: ImageReferences | None = None  # IP-Adapter image references (engine/references.py)
    motion_scales: list[float] | None = None  # per window; None: the motion modules as trained
    motion: MotionScale | None = None  # the hooks that apply them in mode "unet"
    # Prompt editing (prompt_steps.py): per step index, the (positive, negative) to use; None: the prompts hold
    text_steps: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None

    def text_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(positive, negative) at the 0-based index of a step among those that run."""
        if self.text_steps is None:
            return self.positive, self.negative
        return self.text_steps[min(step, len(self.text_steps) - 1)]

    def embeds(self, step: int, frames: list[int] | None = None) -> torch.Tensor:
        """The text embeddings of one prediction: the frames' (all when None) positive, after the negative with
        CFG."""
        positive, negative = self.text_at(step)
        if frames is not None:
            positive = positive[frames]
        if not self.cfg:
            return positive
        return torch.cat([negative.expand(positive.shape[0], -1, -1), positive])

    @property
    def cfg(self) -> bool:
        return self.guidance > 1.0

    @property
    def batch(self) -> int:
        return 2 if self.cfg else 1


def latent_preview(latents: torch.Tensor) -> np.ndarray:
    """(1, 4, F, h, w) latents -> (F, h, w, 3) uint8 through the linear latent-to-RGB map."""
    x = latents[0].float().permute(1, 2, 3, 0) @ _LATENT_RGB.to(latents.device)
    return ((x + 1) * 127.5).clamp(0, 255).byte().cpu().numpy()


def control_active(step: int, steps: int, start: float, end: float) -> bool:
    """Whether a ControlNet acts at `step`: the same rule as diffusers' control_guidance_start/end."""
    return not (step / steps < start or (step + 1) / steps > end)


def travel(keys: list[tuple[int, torch.Tensor]], frames: int) -> torch.Tensor:
    """Per-frame prompt embeddings (frames, tokens, dim) linearly interpolated between (frame, embedding) keys."""
    keys = sorted(keys, key=lambda k: k[0])
    out = []
    for f in range(frames):
        after = next((k for k in keys if k[0] >= f), keys[-1])
        before = next((k for k in reversed(keys) if k[0] <= f), keys[0])
        if after[0] == before[0]:
            out.append(before[1])
        else:
            a = (f - before[0]) / (after[0] - before[0])
            out.append(torch.lerp(before[1], after[1], a))
    return torch.stack(out)
