"""Limits of the spec's numbers and the check that names a bad one. Standard library only."""

from __future__ import annotations

import math

LIMITS = {
    "steps": (1, 150),
    "guidance": (0.0, 30.0),
    "size": (64, 2048),
    "frames": (1, 1024),
    "fps": (1, 120),
    "weight": (-2.0, 4.0),
    "motion_lora_weight": (0.0, 2.0),
    "motion_scale": (0.0, 3.0),  # the motion modules' contribution: 0 none (frames independent), 1 as trained
    "references": (0, 8),
    "free_init_iterations": (1, 5),
    "clip_skip": (1, 12),  # CLIP ViT-L/14 has 12 layers
}


def _number(errors, where, value, lo, hi, integer=False):
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        errors.append((where, f"must be {'an integer' if integer else 'a number'}, got {value!r}"))
        return False
    if not lo <= value <= hi:
        errors.append((where, f"must be between {lo} and {hi}, got {value}"))
        return False
    return True
