"""Motion scale: a multiplier on what the motion modules add, out = x + s·(module(x) − x), per job or per window.

This is what ComfyUI-AnimateDiff-Evolved calls the motion model's "effect" (`effect_multival`:
`VanillaTemporalModule.forward` returns input·(1 − effect) + temporal_transformer(input)·effect, and 0 skips the
module). ADE's `scale_multival` (formerly "motion_scale"/attn_scale) is another knob: it multiplies the keys of the
temporal attention (a temperature on how frames attend to each other); Marionette does not offer that one.
s = 1 is the motion module as trained (no hook is installed at all), 0 makes every motion module the identity (the
frames are denoised independently, as by the image model alone), above 1 exaggerates it.

Only the motion UNet's modules are scaled: SparseCtrl's own motion modules are part of the keyframe encoder (ADE
scales the motion model only). With context windows in mode "unet" the scale of the window being predicted is set
before its prediction; in mode "temporal" the windows run inside TemporalWindows, which applies each window's scale
to that window's motion-module output before the fusion (`scaled`).
"""

from __future__ import annotations

import torch

MOTION_MODULE = "AnimateDiffTransformer3D"  # diffusers' motion module (the UNet's temporal transformer)


def scaled(x: torch.Tensor, out: torch.Tensor, scale: float) -> torch.Tensor:
    """A motion module's output with its contribution scaled."""
    return x + scale * (out - x)


def window_scales(job: float, per_window: list[float], windows: int) -> list[float] | None:
    """The scale of each window (per_window when given, else the job's everywhere); None when all are 1."""
    scales = list(per_window) if per_window else [job] * windows
    if len(scales) != windows:
        raise ValueError(f"{len(scales)} motion scales for {windows} context windows; give one per window")
    return None if all(s == 1.0 for s in scales) else scales


class MotionScale:
    """Forward hooks on every motion module of `model` scaling its contribution by the current window's scale."""

    def __init__(self, model: torch.nn.Module, scales: list[float]):
        self.model, self.scales, self.value = model, scales, scales[0]
        self._handles = []

    def use(self, window: int):
        self.value = self.scales[window]

    def __enter__(self):
        for module in self.model.modules():
            if type(module).__name__ == MOTION_MODULE:
                self._handles.append(module.register_forward_hook(self._hook, with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, module, args, kwargs, output):
        x = args[0] if args else kwargs["hidden_states"]
        return scaled(x, output, self.value)
