"""The camera path as CameraCtrl input: RealEstate10K lines, per-window relative poses and the Plücker embedding.

What CameraCtrl (hehao13/CameraCtrl, `inference.py` and `cameractrl/data/dataset.py`) feeds its pose encoder, and
how this module reproduces it from the scene's camera:
- Poses are relative to the first frame of the clip, that frame's translation zeroed: c2w_rel_i = w2c_0 @ c2w_i
  (`get_relative_pose` with zero_t_first_frame). With context windows each window is such a clip: its poses are
  relative to its own first frame (the model was trained on 16-frame clips).
- Intrinsics are fitted to the generated size the way its `rescale_fxy` aspect fix does: the source image scaled to
  cover the target and centre-cropped (fx, fy scale with the covering factor). For an unshifted lens this is
  exactly CameraCtrl's formula; for a shifted lens the principal point follows the crop, which CameraCtrl (whose
  data has cx = cy = 0.5) never needed.
- Rays through pixel centres (i + 0.5, j + 0.5), d = normalised K⁻¹ ray rotated by the pose, o the camera centre,
  Plücker = (o × d, d): 6 channels per pixel of the generated size (`ray_condition`).
- Scale: RealEstate10K's poses come from SLAM, scale-normalised per sequence by the dataset's authors from the
  scene's own depths; a Blender scene is in metres. Translations are divided by the median scene depth the camera
  path carries (the median over the window's frames of each frame's median depth), so content at the typical
  depth sits at distance 1 and a dolly of one scene depth is a translation of 1 whatever the scene's units.
  This is our choice, documented in `scene_scale`; no real weights were available to tune it.
"""

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
        values = [
            K[0, 0] / cam.width,
            K[1, 1] / cam.height,
            K[0, 2] / cam.width,
            K[1, 2] / cam.height,
            0.0,
            0.0,
            *M[:3, :4].reshape(-1),
        ]
        lines.append(" ".join([str(round(number / cam.fps * 1e6))] + [f"{v:.9g}" for v in values]))
    return lines


def relative_poses(path: dict, frames: list[int] | None = None, scale: float = 1.0) -> np.ndarray:
    """(F, 4, 4) camera-to-world matrices of `frames` (default: all) relative to the first of them:
    c2w_rel_i = w2c_first @ inv(w2c_i); the first is the identity and every pose is in the first camera's OpenCV
    axes. Translations are divided by `scale` (see `scene_scale`). A frame may repeat: each is its own pose."""
    cam = CameraPath(path)
    frames = list(range(len(cam))) if frames is None else list(frames)
    out = np.stack([cam.w2c[frames[0]] @ np.linalg.inv(cam.w2c[k]) for k in frames])
    out[0] = np.eye(4)  # exactly, as CameraCtrl sets it: the first camera's translation is zero, not ~1e-17
    out[:, :3, 3] /= scale
    return out


def scene_scale(path: dict, frames: list[int] | None = None) -> float | None:
    """The median scene depth over `frames` (default: all): the unit translations are measured in. None when no
    frame of the path saw anything (then translations cannot be judged and are used as they are)."""
    frames = range(len(path["frames"])) if frames is None else frames
    known = [path["frames"][k].get("depth") for k in frames]
    known = [d for d in known if d is not None] or [
        f.get("depth") for f in path["frames"] if f.get("depth") is not None
    ]
    return float(np.median(known)) if known else None


def fit_intrinsics(K: np.ndarray, src_width: int, src_height: int, width: int, height: int) -> np.ndarray:
    """K (pixels of a src_width × src_height image) for the width × height image made by scaling the source to
    cover it and cropping the centre: CameraCtrl's aspect fix of fx or fy (module docstring)."""
    s = max(width / src_width, height / src_height)
    out = np.array(K, dtype=np.float64) * s
    out[0, 2] -= (src_width * s - width) / 2
    out[1, 2] -= (src_height * s - height) / 2
    out[2] = (0.0, 0.0, 1.0)
    return out


def plucker(
    path: dict, height: int | None = None, width: int | None = None, frames: list[int] | None = None, scale: float = 1.0
) -> np.ndarray:
    """(F, 6, H, W) float32 Plücker embedding of the pixel rays of `frames` (default: all), as CameraCtrl's
    `ray_condition` builds it: channels 0-2 o × d, channels 3-5 d, with d the unit ray direction and o the camera
    centre, both in the axes of the first of `frames` (relative_poses, translations divided by `scale`). Rays go
    through pixel centres (i + 0.5, j + 0.5) of K fitted to (height, width) (fit_intrinsics; default: the path's
    own size)."""
    cam = CameraPath(path)
    H, W = height or cam.height, width or cam.width
    frames = list(range(len(cam))) if frames is None else list(frames)
    j, i = np.meshgrid(np.arange(H, dtype=np.float64) + 0.5, np.arange(W, dtype=np.float64) + 0.5, indexing="ij")
    out = np.empty((len(frames), 6, H, W), dtype=np.float32)
    for n, (k, c2w) in enumerate(zip(frames, relative_poses(path, frames, scale))):
        K = fit_intrinsics(cam.K[k], cam.width, cam.height, W, H)
        fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
        y = (j - cy) / fy
        x = (i - cx - skew * y) / fx
        d_cam = np.stack([x, y, np.ones_like(x)], axis=-1)
        d_cam /= np.linalg.norm(d_cam, axis=-1, keepdims=True)
        d = d_cam @ c2w[:3, :3].T
        o = np.broadcast_to(c2w[:3, 3], d.shape)
        out[n, :3] = np.moveaxis(np.cross(o, d), -1, 0)
        out[n, 3:] = np.moveaxis(d, -1, 0)
    return out


def window_input(path: dict, frames: list[int], height: int, width: int) -> tuple[np.ndarray, float | None]:
    """The pose encoder's input for one context window: (F, 6, H, W) Plücker embedding relative to the window's
    first frame, translations in units of the window's median scene depth; and that depth (None: unknown)."""
    depth = scene_scale(path, frames)
    return plucker(path, height, width, frames, depth or 1.0), depth
