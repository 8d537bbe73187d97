"""Camera matching: from the camera path the artist animated, the camera motion LoRAs and their weights over time;
numpy and the standard library. The same path as CameraCtrl input: `cameractrl.py`; the plot: `plot.py`.

Conventions (docs/CONVENTIONS.md, "Camera"):
- `world_to_camera` is OpenCV: camera x right, y DOWN, z FORWARD; X_cam = R X_world + t, so the camera centre is
  C = -Rᵀ t. K is in pixels with the origin at the image's top-left corner (pixel centres at +0.5).
- For each pair of frames (t, t+1), R_rel = R_{t+1} R_tᵀ maps directions from camera-t to camera-(t+1) axes, so
  the camera itself turned by R_relᵀ. Its rotation vector w (axis × angle, in camera-t axes) gives
      yaw   =  w_y / dt   (+ = the camera turns to its own right: +y points down, and a turn about it takes +z to +x)
      pitch =  w_x / dt   (+ = the camera pitches up: a turn about +x takes +z toward -y, which is up)
      roll  =  w_z / dt   (+ = clockwise as seen from behind the camera: it takes +x toward +y, right toward down)
  and the centre's displacement in camera-t axes, divided by the scene depth (scale-free), gives
      sideways = d_x / depth / dt (+ right), vertical = -d_y / depth / dt (+ up), forward = d_z / depth / dt (+ ahead)
  and zoom = log(f_{t+1} / f_t) / dt (+ = focal length grows; f the geometric mean of fx and fy).
  All are per SECOND, so the frame rate does not change them. For the per-frame turns these are yaw/pitch/roll.
- horizon_roll: how fast the world's up direction (the path's `up`, default +Z: Blender's world) turns on screen,
  + = the camera rolls clockwise. A camera pitched down that pans about the world's vertical has a body roll
  (sin(pitch) × the turn) but its horizon stays level: it pans, it does not roll. So the roll signal is the horizon
  roll, blended into the body roll when the camera looks nearly straight up or down (no horizon to watch).
- The four signals the LoRAs follow, in on-screen terms (positive direction: protocol.CAMERA_DIRECTIONS):
      pan  = (yaw + sideways) · fx / W   image widths per second that content at the median depth drifts
      tilt = (pitch + vertical) · fy / H image heights per second
      zoom = zoom + forward              relative growth of content at the median depth per second
      roll = horizon_roll                radians per second
  A turn and a slide add up as they move the picture: a slide of s at depth D drifts content like a turn of s / D.
  An orbit (sliding right while turning left to keep a subject centred) therefore reads as the turn minus the
  parallax of the median depth: pan_left when the scene behind the subject dominates the view, nothing when the
  median depth is the subject's own distance (then content at that depth indeed does not drift).
- A window's signal is the least-squares slope of the signal's running integral over the window's frames: net
  motion per second, with zero-mean shake averaging out (a hand-held camera maps to no LoRA). Weights rise
  linearly from 0 at the dead zone to max_weight at the full rate (THRESHOLDS); one sign per signal, so opposite
  LoRAs are never both on.
"""

from __future__ import annotations

import math

import numpy as np

from ..engine.windows import context_windows, contiguous_runs
from ..protocol import CAMERA_DIRECTIONS, CAMERA_MATCH_DEFAULTS, MOTION_LORAS

COMPONENTS = ("yaw", "pitch", "roll", "horizon_roll", "sideways", "vertical", "forward", "zoom")
SIGNALS = ("pan", "tilt", "zoom", "roll")
# signal -> (dead zone, rate that earns max_weight), per second, in the signal's units (see the module docstring).
THRESHOLDS = {"pan": (0.04, 0.3), "tilt": (0.04, 0.3), "zoom": (0.04, 0.3), "roll": (0.05, 0.5)}
OPPOSITE = {
    name: next(o for o, (s, sign, _) in CAMERA_DIRECTIONS.items() if s == signal and sign == -own)
    for name, (signal, own, _) in CAMERA_DIRECTIONS.items()
}


class CameraPath:
    """A validated camera path (protocol.camera_path_errors) as arrays."""

    def __init__(self, path: dict):
        frames = path["frames"]
        self.fps = float(path["fps"])
        self.width, self.height = int(path["width"]), int(path["height"])
        self.numbers = np.array([f["frame"] for f in frames], dtype=np.int64)
        self.K = np.array([f["K"] for f in frames], dtype=np.float64)
        self.w2c = np.array([f["world_to_camera"] for f in frames], dtype=np.float64)
        raw = [f.get("depth") for f in frames]
        self.depth_known = any(d is not None for d in raw)
        self.depth = _fill(raw)
        self.times = (self.numbers - self.numbers[0]) / self.fps
        up = np.asarray(path.get("up", (0.0, 0.0, 1.0)), dtype=np.float64)
        self.up = up / np.linalg.norm(up)
        self.match = {k: path.get(k, v) for k, v in CAMERA_MATCH_DEFAULTS.items()}

    def __len__(self):
        return len(self.numbers)


def _fill(depths: list) -> np.ndarray:
    """Frames where nothing was in view (depth null) take the nearest known depth; none known: 1 (unused)."""
    known = [i for i, d in enumerate(depths) if d is not None]
    if not known:
        return np.ones(len(depths))
    return np.array([depths[min(known, key=lambda k: abs(k - i))] for i in range(len(depths))], dtype=np.float64)


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """Axis × angle (radians, 0..π) of a rotation matrix."""
    w = 0.5 * np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    angle = math.acos(max(-1.0, min(1.0, (np.trace(R) - 1.0) / 2.0)))
    if angle < 1e-7:
        return w
    if math.pi - angle > 1e-4:
        return w * (angle / math.sin(angle))
    # near a half turn the antisymmetric part vanishes: the axis is the dominant column of (R + I) / 2
    B = (R + np.eye(3)) / 2.0
    axis = B[:, int(np.argmax(np.diag(B)))]
    axis = axis / np.linalg.norm(axis)
    return axis * angle * (1.0 if axis @ w >= 0 else -1.0)


def components(path: dict | CameraPath) -> dict:
    """Per pair of consecutive frames, the camera's motion in its own axes, per second (module docstring).

    Lists of length frames - 1; `index` is the pair's first job frame (0-based), `frame` its scene frame number.
    """
    cam = path if isinstance(path, CameraPath) else CameraPath(path)
    out = {"index": [], "frame": [], **{c: [] for c in COMPONENTS}}
    for i in range(len(cam) - 1):
        dt = (cam.numbers[i + 1] - cam.numbers[i]) / cam.fps
        R0, R1 = cam.w2c[i, :3, :3], cam.w2c[i + 1, :3, :3]
        C0 = -R0.T @ cam.w2c[i, :3, 3]
        C1 = -R1.T @ cam.w2c[i + 1, :3, 3]
        R_rel = R1 @ R0.T
        w = -rotation_vector(R_rel)  # the camera's own turn, in camera-t axes
        depth = 0.5 * (cam.depth[i] + cam.depth[i + 1]) if cam.depth_known else math.inf
        d = R0 @ (C1 - C0) / depth  # the centre's displacement in camera-t axes, in depths
        f0 = math.sqrt(cam.K[i, 0, 0] * cam.K[i, 1, 1])
        f1 = math.sqrt(cam.K[i + 1, 0, 0] * cam.K[i + 1, 1, 1])
        values = {
            "yaw": w[1],
            "pitch": w[0],
            "roll": w[2],
            "horizon_roll": _horizon_roll(R0, R1, cam.up, w[2]),
            "sideways": d[0],
            "vertical": -d[1],
            "forward": d[2],
            "zoom": math.log(f1 / f0),
        }
        out["index"].append(i)
        out["frame"].append(int(cam.numbers[i]))
        for name, value in values.items():
            out[name].append(float(value / dt))
    return out


def _horizon_roll(R0: np.ndarray, R1: np.ndarray, up: np.ndarray, body_roll: float) -> float:
    """The turn of the world's up direction on screen between two frames (+ = the camera rolled clockwise), blended
    into the body roll as the camera comes to look along the vertical."""
    u0, u1 = R0 @ up, R1 @ up  # up in camera axes; on screen "up" is -y
    turn = math.atan2(u1[0], -u1[1]) - math.atan2(u0[0], -u0[1])
    turn = -((turn + math.pi) % (2 * math.pi) - math.pi)
    level = min(math.hypot(u0[0], u0[1]), math.hypot(u1[0], u1[1]))  # 1: looking level, 0: straight up or down
    a = min(1.0, max(0.0, (level - 0.1) / 0.2))
    return a * turn + (1 - a) * body_roll


def signals(cam: CameraPath, comp: dict) -> dict[str, np.ndarray]:
    """The four on-screen signals per pair of frames (module docstring)."""
    c = {k: np.asarray(comp[k], dtype=np.float64) for k in COMPONENTS}
    fx = 0.5 * (cam.K[:-1, 0, 0] + cam.K[1:, 0, 0])
    fy = 0.5 * (cam.K[:-1, 1, 1] + cam.K[1:, 1, 1])
    return {
        "pan": (c["yaw"] + c["sideways"]) * fx / cam.width,
        "tilt": (c["pitch"] + c["vertical"]) * fy / cam.height,
        "zoom": c["zoom"] + c["forward"],
        "roll": c["horizon_roll"],
    }


def net_rate(times: np.ndarray, rates: np.ndarray) -> float:
    """Least-squares slope of the running integral of `rates` (one per interval of `times`): net rate per second,
    with shake around a steady path averaging out."""
    if len(times) < 2:
        return 0.0
    cum = np.concatenate([[0.0], np.cumsum(rates * np.diff(times))])
    t = times - times.mean()
    return float(t @ (cum - cum.mean()) / (t @ t))


def weights(rates: dict[str, float], max_weight: float = 1.0) -> list[dict]:
    """Motion LoRA weights in [0, max_weight] from the four signals: zero inside the dead zone, linear up to the
    full rate; at most one of each opposite pair. In protocol.MOTION_LORAS order."""
    out = []
    for name in MOTION_LORAS:
        signal, sign, _ = CAMERA_DIRECTIONS[name]
        dead, full = THRESHOLDS[signal]
        value = sign * rates[signal]
        if value > dead:
            weight = round(max_weight * min(1.0, (value - dead) / (full - dead)), 3)
            if weight > 0:
                out.append({"name": name, "weight": weight})
    return out


def match(
    path: dict,
    max_weight: float | None = None,
    window: int | None = None,
    overlap: int | None = None,
    windows: list[list[int]] | None = None,
) -> dict:
    """The camera's motion LoRAs: clip weights, per-window schedule, per-pair components and signals.

    `windows`: the job's context windows (engine.windows.context_windows), so that each window's weights are
    measured over exactly the frames the motion module sees together; without them, the windows the same function
    makes from the path's own `window`/`overlap`. Settings default to the path's own `max_weight`, `window`,
    `overlap` keys, then CAMERA_MATCH_DEFAULTS."""
    cam = CameraPath(path)
    max_weight = float(cam.match["max_weight"] if max_weight is None else max_weight)
    window = int(cam.match["window"] if window is None else window)
    overlap = int(cam.match["overlap"] if overlap is None else overlap)
    comp = components(cam)
    sig = signals(cam, comp)

    def rates(start, end):
        return {name: net_rate(cam.times[start:end], sig[name][start : end - 1]) for name in SIGNALS}

    def window_rates(frames):
        """Net rates over a window's frames; a looping window's runs (either side of the wrap) weighted by their
        duration, the wrap itself being no camera motion."""
        runs = [(r[0], r[-1] + 1) for r in contiguous_runs(frames)]
        if len(runs) == 1:
            return rates(*runs[0])
        spans = [cam.times[end - 1] - cam.times[start] for start, end in runs]
        total = sum(spans) or 1.0
        parts = [rates(start, end) for start, end in runs]
        return {name: sum(p[name] * d for p, d in zip(parts, spans)) / total for name in SIGNALS}

    clip = rates(0, len(cam))
    out = []
    for frames in windows or context_windows(len(cam), window, overlap):
        r = window_rates(frames)
        out.append(
            {
                "start": frames[0],
                "end": frames[0] + len(frames),
                "motion_loras": weights(r, max_weight),
                "rates": {k: round(v, 5) for k, v in r.items()},
            }
        )
    windows = out
    notes = []
    if not cam.depth_known:
        notes.append(
            "no frame of the camera path has a scene depth (nothing in view?): camera translation was "
            "ignored, only turns and lens zoom were matched"
        )
    return {
        "motion_loras": weights(clip, max_weight),
        "windows": windows,
        "components": comp,
        "signals": {k: [float(x) for x in v] for k, v in sig.items()},
        "rates": {k: round(v, 5) for k, v in clip.items()},
        "settings": {
            "max_weight": max_weight,
            "window": window,
            "overlap": overlap,
            "thresholds": {k: list(v) for k, v in THRESHOLDS.items()},
        },
        "notes": notes,
    }


def with_overrides(matched: list[dict], manual: list) -> list[dict]:
    """Matched weights with the spec's manual ones on top, per LoRA name. A manual entry also switches off the
    matched opposite LoRA (unless that is listed too), so opposite LoRAs stay exclusive; weight 0 switches off."""
    manual = {m.name: m.weight for m in manual}
    out = {m["name"]: m["weight"] for m in matched if m["name"] not in manual and OPPOSITE.get(m["name"]) not in manual}
    out.update(manual)
    order = list(MOTION_LORAS) + sorted(set(out) - set(MOTION_LORAS))
    return [{"name": n, "weight": out[n]} for n in order if n in out and out[n] > 0]
