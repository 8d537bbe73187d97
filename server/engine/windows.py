"""Context windows: how a clip longer than the motion module's span is split and fused back."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ContextWindows:
    """Run the clip as overlapping windows the motion module was trained on, through the whole UNet (ControlNets
    and SparseCtrl included), fusing the overlapping predictions; memory is that of one window."""
    length: int = 16
    overlap: int = 4
    loop: bool = False       # windows wrap from the last frames to the first, so the clip loops seamlessly
    fuse: str = "pyramid"    # "pyramid": frames near a window's centre count more; "flat": all the same


def context_windows(frames: int, length: int, overlap: int, loop: bool) -> list[list[int]]:
    """Frame indices of each window. A clip no longer than a window is one window (unless it loops)."""
    if frames <= length and not loop:
        return [list(range(frames))]
    length = min(length, frames)
    stride = max(1, length - min(overlap, length - 1))
    if loop:
        return [[(start + i) % frames for i in range(length)] for start in range(0, frames, stride)]
    starts = list(range(0, frames - length + 1, stride))
    if starts[-1] != frames - length:
        starts.append(frames - length)
    return [list(range(start, start + length)) for start in starts]


def fusion_table(frames: int, windows: list[list[int]], fuse: str) -> torch.Tensor:
    """(windows, frames) weights with which each window's prediction enters each frame; every column sums to 1."""
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
