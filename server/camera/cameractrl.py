"""The camera path as CameraCtrl input: RealEstate10K lines and the Plücker embedding of the pixel rays."""

from __future__ import annotations

import numpy as np

from .motion import CameraPath


def realestate10k_lines(path: dict) -> list[str]:
    """One RealEstate10K-style line per frame, as CameraCtrl reads them:
    `timestamp_us fx/W fy/H cx/W cy/H 0 0 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3`
    (timestamp = scene frame / fps in microseconds; K normalised by the image size, corner-origin convention so an
    unshifted lens has cx/W = 0.5; then the 3×4 OpenCV world-to-camera, row-major)."""
    cam = CameraPath(path)
    lines = []
    for number, K, M in zip(cam.numbers, cam.K, cam.w2c):
        values = [K[0, 0] / cam.width, K[1, 1] / cam.height, K[0, 2] / cam.width, K[1, 2] / cam.height, 0.0, 0.0,
                  *M[:3, :4].reshape(-1)]
        lines.append(" ".join([str(round(number / cam.fps * 1e6))] + [f"{v:.9g}" for v in values]))
    return lines


def relative_poses(path: dict) -> np.ndarray:
    """(F, 4, 4) camera-to-world matrices relative to the first frame: c2w_rel_i = w2c_0 @ inv(w2c_i); the first is
    the identity, and every pose is expressed in the first camera's OpenCV axes."""
    cam = CameraPath(path)
    return np.stack([cam.w2c[0] @ np.linalg.inv(m) for m in cam.w2c])


def plucker(path: dict, height: int | None = None, width: int | None = None) -> np.ndarray:
    """(F, 6, H, W) float32 Plücker embedding of the pixel rays, as CameraCtrl's `ray_condition` builds it:
    channels 0-2 o × d, channels 3-5 d, with d the unit ray direction and o the camera centre, both in the first
    camera's axes (relative_poses). Rays go through pixel centres (i + 0.5, j + 0.5) of K, scaled from the path's
    size to (height, width) when those are given (default: the path's size)."""
    cam = CameraPath(path)
    H, W = height or cam.height, width or cam.width
    sx, sy = W / cam.width, H / cam.height
    j, i = np.meshgrid(np.arange(H, dtype=np.float64) + 0.5, np.arange(W, dtype=np.float64) + 0.5, indexing="ij")
    out = np.empty((len(cam), 6, H, W), dtype=np.float32)
    for k, c2w in enumerate(relative_poses(path)):
        K = cam.K[k]
        fx, fy, cx, cy, skew = K[0, 0] * sx, K[1, 1] * sy, K[0, 2] * sx, K[1, 2] * sy, K[0, 1] * sx
        y = (j - cy) / fy
        x = (i - cx - skew * y) / fx
        d_cam = np.stack([x, y, np.ones_like(x)], axis=-1)
        d_cam /= np.linalg.norm(d_cam, axis=-1, keepdims=True)
        d = d_cam @ c2w[:3, :3].T
        o = np.broadcast_to(c2w[:3, 3], d.shape)
        out[k, :3] = np.moveaxis(np.cross(o, d), -1, 0)
        out[k, 3:] = np.moveaxis(d, -1, 0)
    return out
