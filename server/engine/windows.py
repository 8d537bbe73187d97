"""The one window model: how a clip is split into the windows the motion module sees and fused back.

`context_windows` is used by the context-window denoising loop, by camera matching (each window's motion LoRA
weights are measured over exactly that window's frames) and so by the per-window camera LoRA schedule. Standard
library only at import time (camera matching uses it without torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..protocol import WINDOW_MODES as WINDOW_MODES  # "temporal" | "unet"
from ..protocol import context_windows as context_windows  # the one window split

LOW_VRAM_CHUNK = 16


@dataclass
class ContextWindows:
    """Overlapping windows of the length the motion module was trained on, fused where they overlap.

    mode "temporal": only the motion modules see windows; every other layer and the ControlNets see each frame
    once, `chunk` frames at a time (engine/temporal_windows.py). mode "unet": the whole UNet, ControlNets and SparseCtrl
    included, runs once per window and the noise predictions are fused; memory is that of one window.
    """

    length: int = 16
    overlap: int = 4
    loop: bool = False  # windows wrap from the last frames to the first, so the clip loops seamlessly
    fuse: str = "pyramid"  # "pyramid": frames near a window's centre count more; "flat": all the same
    mode: str = "temporal"
    # Frames per call of a per-frame layer or ControlNet in mode "temporal". 32: at 128 frames 0.93x FreeNoise's
    # cost per frame with a quarter of its largest tensor (bench/RESULTS.md); the peak is a 32-frame clip's whatever
    # the clip's length. --low-vram halves it (LOW_VRAM_CHUNK).
    chunk: int = 32
    motion_scales: list[float] = field(default_factory=list)  # one per window; empty: the job's motion_scale


def contiguous_runs(window: list[int]) -> list[list[int]]:
    """A window's frames split where they are not consecutive clip frames (a looping window's wrap)."""
    runs = [[window[0]]]
    for f in window[1:]:
        if f == runs[-1][-1] + 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def fusion_table(frames: int, windows: list[list[int]], fuse: str):
    """(windows, frames) weights with which each window's prediction enters each frame; every column sums to 1."""
    import torch

    length = len(windows[0])
    if fuse == "flat":
        ramp = torch.ones(length, dtype=torch.float64)
    elif fuse == "pyramid":
        ramp = torch.tensor([min(i + 1, length - i) for i in range(length)], dtype=torch.float64)
    else:
        raise ValueError(f"unknown fuse {fuse!r}; use 'pyramid' or 'flat'")
    table = torch.zeros((len(windows), frames), dtype=torch.float64)
    for w, idx in enumerate(windows):
        table[w, idx] = ramp
    return table / table.sum(0, keepdim=True)
