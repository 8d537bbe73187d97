"""How a clip is split into the context windows the motion module sees: the one definition, shared by the server's
denoising loops, camera matching and the spec's per-window values (context.motion_scales). Standard library only."""

from __future__ import annotations


def context_windows(frames: int, length: int, overlap: int, loop: bool = False) -> list[list[int]]:
    """Frame indices of each window: `length` long, sharing `overlap` frames, the last ending at the clip's end
    (or, looping, wrapping from the last frames to the first). A clip no longer than a window is one window
    (unless it loops)."""
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
