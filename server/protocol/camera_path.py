"""Checks of a camera path (README "The camera path"), field by field. Standard library only."""

from __future__ import annotations

import math

from .numbers import LIMITS, _number

# Optional keys of a camera path that tune the matching (README "Camera matching"), with their defaults.
CAMERA_MATCH_DEFAULTS = {"max_weight": 1.0, "window": 16, "overlap": 4}

_CAMERA_KEYS = ("fps", "width", "height", "frames", "up", *CAMERA_MATCH_DEFAULTS)
_CAMERA_FRAME_KEYS = ("frame", "K", "world_to_camera", "depth")


def _matrix(value, rows, cols) -> bool:
    return (
        isinstance(value, list)
        and len(value) == rows
        and all(isinstance(r, list) and len(r) == cols for r in value)
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for r in value for x in r)
    )


def camera_path_errors(camera, frames=None, where: str = "camera") -> list[tuple[str, str]]:
    """Check a camera path (README "The camera path"); `frames`: the job's frame count it must match."""
    errors: list[tuple[str, str]] = []
    if not isinstance(camera, dict):
        return [(where, 'must be a camera path object: {"fps", "width", "height", "frames": [...]}')]
    for key in camera:
        if key not in _CAMERA_KEYS:
            errors.append((f"{where}.{key}", f"unknown field; known fields: {', '.join(_CAMERA_KEYS)}"))
    for key in ("fps", "width", "height"):
        if key not in camera:
            errors.append((f"{where}.{key}", "is required"))
    fps = camera.get("fps", 1)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        errors.append((f"{where}.fps", f"must be a positive number of frames per second, got {fps!r}"))
    for key in ("width", "height"):
        value = camera.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            errors.append((f"{where}.{key}", f"must be a positive number of pixels, got {value!r}"))
    up = camera.get("up", [0, 0, 1])
    if not _matrix([up], 1, 3) or not any(up):
        errors.append((f"{where}.up", f"must be the world's up direction, 3 numbers not all 0, got {up!r}"))
    _number(
        errors,
        f"{where}.max_weight",
        camera.get("max_weight", CAMERA_MATCH_DEFAULTS["max_weight"]),
        0.0,
        LIMITS["motion_lora_weight"][1],
    )
    window = camera.get("window", CAMERA_MATCH_DEFAULTS["window"])
    if _number(errors, f"{where}.window", window, 2, LIMITS["frames"][1], integer=True):
        _number(
            errors,
            f"{where}.overlap",
            camera.get("overlap", CAMERA_MATCH_DEFAULTS["overlap"]),
            0,
            window - 1,
            integer=True,
        )
    items = camera.get("frames")
    if not isinstance(items, list) or len(items) < 2:
        errors.append((f"{where}.frames", "must be a list of at least 2 frames (motion needs two)"))
        return errors
    if isinstance(frames, int) and not isinstance(frames, bool) and len(items) != frames:
        errors.append(
            (f"{where}.frames", f"{len(items)} camera frames for a job of {frames} frames; send one per frame")
        )
    previous = None
    for i, item in enumerate(items):
        at = f"{where}.frames[{i}]"
        if not isinstance(item, dict):
            errors.append((at, f"must be an object with {', '.join(_CAMERA_FRAME_KEYS)}"))
            continue
        for key in item:
            if key not in _CAMERA_FRAME_KEYS:
                errors.append((f"{at}.{key}", f"unknown field; known fields: {', '.join(_CAMERA_FRAME_KEYS)}"))
        number = item.get("frame")
        if isinstance(number, bool) or not isinstance(number, int):
            errors.append((f"{at}.frame", f"must be the scene frame number (an integer), got {number!r}"))
        elif previous is not None and number <= previous:
            errors.append((f"{at}.frame", f"frame numbers must increase; {number} follows {previous}"))
        else:
            previous = number
        K = item.get("K")
        if not _matrix(K, 3, 3):
            errors.append((f"{at}.K", "must be a 3x3 list of finite numbers [[fx,0,cx],[0,fy,cy],[0,0,1]]"))
        elif K[0][0] <= 0 or K[1][1] <= 0 or K[1][0] != 0 or K[2] != [0, 0, 1]:
            errors.append((f"{at}.K", "must be [[fx,s,cx],[0,fy,cy],[0,0,1]] with fx > 0 and fy > 0 (pixels)"))
        M = item.get("world_to_camera")
        if not _matrix(M, 4, 4):
            errors.append((f"{at}.world_to_camera", "must be a 4x4 list of finite numbers (OpenCV world-to-camera)"))
        elif not _rigid(M):
            errors.append(
                (
                    f"{at}.world_to_camera",
                    "must be a rigid transform: a rotation (orthonormal, "
                    "determinant +1, no scale) and a translation, last row 0 0 0 1",
                )
            )
        depth = item.get("depth")
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, (int, float)) or not math.isfinite(depth) or depth <= 0
        ):
            errors.append(
                (
                    f"{at}.depth",
                    f"must be a positive distance (the median scene depth seen) or null "
                    f"when nothing is in view, got {depth!r}",
                )
            )
    return errors


def _rigid(M, tol=1e-3) -> bool:
    if any(abs(float(x) - e) > tol for x, e in zip(M[3], (0.0, 0.0, 0.0, 1.0))):
        return False
    R = [row[:3] for row in M[:3]]
    for a in range(3):
        for b in range(3):
            dot = sum(R[a][k] * R[b][k] for k in range(3))
            if abs(dot - (1.0 if a == b else 0.0)) > tol:
                return False
    det = (
        R[0][0] * (R[1][1] * R[2][2] - R[1][2] * R[2][1])
        - R[0][1] * (R[1][0] * R[2][2] - R[1][2] * R[2][0])
        + R[0][2] * (R[1][0] * R[2][1] - R[1][1] * R[2][0])
    )
    return det > 0
