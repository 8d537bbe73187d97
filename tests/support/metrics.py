"""Measurements of generated clips, for benchmarks and tests."""

from __future__ import annotations

import numpy as np


def seam_score(frames: np.ndarray, windows: list[list[int]]) -> float:
    """Mean frame-to-frame change across window boundaries divided by the mean change elsewhere.

    frames: (F, H, W, C). A boundary is the step into a window's first frame or out of its last one (clip ends
    excluded). 1.0 means the seams cannot be told from the rest of the motion; above 1 they show.
    """
    frames = np.asarray(frames, dtype=np.float64)
    change = np.abs(np.diff(frames, axis=0)).mean(axis=tuple(range(1, frames.ndim)))  # change[f]: f -> f+1
    last = len(frames) - 1
    seams = set()
    for idx in windows:
        if idx[0] > 0 and idx[0] - 1 < last:
            seams.add(idx[0] - 1)
        if idx[-1] < last:
            seams.add(idx[-1])
    seams = sorted(s for s in seams if 0 <= s < last)
    inside = sorted(set(range(last)) - set(seams))
    if not seams or not inside:
        raise ValueError("the clip needs both window boundaries and frames inside windows")
    return float(change[seams].mean() / max(change[inside].mean(), 1e-12))
