"""Make diffusers' AnimateDiff modules normalise as the original guoyww/AnimateDiff code does.

The weights diffusers loads are the original's; two normalisations are not:

- Motion modules. The original's `TemporalTransformer3DModel` rearranges `b c f h w -> (b f) c h w` before its
  GroupNorm, so every frame is normalised on its own. diffusers' `AnimateDiffTransformer3D` applies the same
  GroupNorm to `(b, c, f, h, w)`, one set of statistics over all frames of the window. This holds for every
  version and for SparseCtrl's motion modules (same class in both codebases).
- v1's spatial ResNets. v1 was trained with `use_inflated_groupnorm: false`: the UNet's ResNet GroupNorms (and
  `conv_norm_out`) see `(b, c, f, h, w)` and take statistics across the frames; v2 and v3 inflate them, i.e. per
  frame, which is what diffusers' 2D ResNets do for every version. The spatial transformers' GroupNorm is per
  frame in the original for all versions.

`apply_motion_norm(model, version, "original")` swaps those GroupNorm modules for the two subclasses below
(sharing the same weight and bias tensors, so state dicts, LoRAs and `.to()` are untouched);
`apply_motion_norm(model, version, "diffusers")` puts plain GroupNorms back. Everything else was checked against
the original and is already the same in diffusers: sinusoidal positions sliced from 0 for each window
(`pe[:, :f]`), attention scale `head_dim ** -0.5`, SparseCtrl's zeroed noisy input and its mask as the last
conditioning channel, and LoRA deltas `scale * up @ down` (the v3 domain adapter's `adapter_lora_scale`).
"""

from __future__ import annotations

import torch
from torch import nn

MODES = ("original", "diffusers")


class PerFrameGroupNorm(nn.GroupNorm):
    """GroupNorm that, given `(b, c, f, h, w)`, normalises each frame on its own, as `(b f) c h w`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return super().forward(x)
        b, c, f, h, w = x.shape
        y = super().forward(x.transpose(1, 2).reshape(b * f, c, h, w))
        return y.reshape(b, f, c, h, w).transpose(1, 2)


class _Frames:
    """How many frames the UNet's current forward has: its frame-wide norms read it (set by a pre-hook)."""

    def __init__(self):
        self.count = 1


class FrameWideGroupNorm(nn.GroupNorm):
    """GroupNorm that, given `(b f) c h w`, takes statistics over all frames of each batch item (v1)."""

    def __init__(self, *args, frames: _Frames, **kwargs):
        super().__init__(*args, **kwargs)
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.frames.count
        bf, c, h, w = x.shape
        if f <= 1 or bf % f:
            return super().forward(x)
        y = super().forward(x.reshape(bf // f, f, c, h, w).transpose(1, 2))
        return y.transpose(1, 2).reshape(bf, c, h, w)


def _swap(parent: nn.Module, name: str, cls, **extra) -> None:
    old = getattr(parent, name)
    if type(old) is cls:
        return
    new = cls(old.num_groups, old.num_channels, eps=old.eps, affine=old.affine, **extra)
    # The same Parameter objects: no copy, and whatever later moves or casts the model moves these too.
    new.weight, new.bias = old.weight, old.bias
    new.train(old.training)
    setattr(parent, name, new)


def motion_version(adapter_config) -> str:
    """ "v1", "v2" or "v3" from a MotionAdapter config: v2 has a mid-block motion module, v1 has none and 24
    positions, v3 none and 32. Fine-tunes (AnimateLCM, Lightning) count as the version they were tuned from."""
    if adapter_config.get("use_motion_mid_block", True):
        return "v2"
    return "v1" if adapter_config.get("motion_max_seq_length", 32) == 24 else "v3"


def _motion_transformers(model: nn.Module):
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    return [m for m in model.modules() if isinstance(m, AnimateDiffTransformer3D)]


def _spatial_resnet_norms(model: nn.Module):
    """(parent, attribute) of every GroupNorm the original's v1 runs over all frames: ResNet norm1/norm2 and the
    UNet's conv_norm_out."""
    from diffusers.models.resnet import ResnetBlock2D

    out = [(m, n) for m in model.modules() if isinstance(m, ResnetBlock2D) for n in ("norm1", "norm2")]
    if isinstance(getattr(model, "conv_norm_out", None), nn.GroupNorm):
        out.append((model, "conv_norm_out"))
    return out


def _record_frames(frames: _Frames):
    def hook(module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        frames.count = sample.shape[2]  # UNetMotionModel takes (b, c, f, h, w)

    return hook


def apply_motion_norm(model: nn.Module, version: str, mode: str = "original") -> nn.Module:
    """Set how `model` (a UNetMotionModel or SparseControlNetModel) normalises: as the original AnimateDiff for
    motion-module `version` ("v1", "v2", "v3"; SparseCtrl is v3), or as diffusers does. Idempotent; returns
    `model`."""
    if mode not in MODES:
        raise ValueError(f"unknown motion_norm {mode!r}; use one of {', '.join(MODES)}")
    for transformer in _motion_transformers(model):
        _swap(transformer, "norm", PerFrameGroupNorm if mode == "original" else nn.GroupNorm)

    handle = getattr(model, "_marionette_frames_hook", None)
    if handle is not None:
        handle.remove()
        model._marionette_frames_hook = None
    frame_wide = mode == "original" and version == "v1" and hasattr(model, "up_blocks")
    if frame_wide:
        frames = _Frames()
        for parent, name in _spatial_resnet_norms(model):
            _swap(parent, name, FrameWideGroupNorm, frames=frames)
        model._marionette_frames_hook = model.register_forward_pre_hook(_record_frames(frames), with_kwargs=True)
    else:
        for parent, name in _spatial_resnet_norms(model):
            _swap(parent, name, nn.GroupNorm)
    model._marionette_motion_norm = (version, mode)
    return model


def motion_norm_of(model: nn.Module) -> tuple[str, str] | None:
    """(version, mode) last applied to `model`, or None."""
    return getattr(model, "_marionette_motion_norm", None)
