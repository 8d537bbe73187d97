"""The scene camera on the server: matching camera motion LoRAs to its path, CameraCtrl input, the plot."""

from .cameractrl import plucker, realestate10k_lines, relative_poses
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

__all__ = ["COMPONENTS", "OPPOSITE", "SIGNALS", "THRESHOLDS", "CameraPath", "components", "match", "net_rate",
           "plot_png", "plucker", "realestate10k_lines", "relative_poses", "rotation_vector", "signals", "weights",
           "with_overrides"]
