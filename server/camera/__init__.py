"""The scene camera on the server: matching camera motion LoRAs to its path, CameraCtrl input, the plot."""

from .cameractrl import fit_intrinsics, plucker, realestate10k_lines, relative_poses, scene_scale, window_input
from .motion import (
    COMPONENTS,
    OPPOSITE,
    SIGNALS,
    THRESHOLDS,
    CameraPath,
    components,
    match,
    net_rate,
    rotation_vector,
    signals,
    weights,
    with_overrides,
)
from .plot import plot_png

__all__ = [
    "COMPONENTS",
    "OPPOSITE",
    "SIGNALS",
    "THRESHOLDS",
    "CameraPath",
    "components",
    "fit_intrinsics",
    "match",
    "net_rate",
    "plot_png",
    "plucker",
    "realestate10k_lines",
    "relative_poses",
    "rotation_vector",
    "scene_scale",
    "signals",
    "weights",
    "window_input",
    "with_overrides",
]
