"""Test support for tests/test_combinations.py: the server's features as factors with levels, each level a change
to a job (spec fields and the guides it needs), so that a covering set of jobs can be written as rows of levels and
any feature of a row can be taken out or set to its neutral value.

A row maps factor -> level; `OFF` (the first level of each factor) is the job without that feature.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from helpers import SIZE, gradient_frames, png

from server.protocol import GUIDE_FORM, context_windows

OFF = "-"
FRAMES = 5  # with windows of 3 overlapping by 1: two windows, three when looping
WINDOW = {"length": 3, "overlap": 1}
REFERENCE_IMAGE = np.random.default_rng(3).uniform(0, 255, (40, 52, 3)).astype(np.uint8)

FACTORS: dict[str, tuple[str, ...]] = {
    "control": (OFF, "depth", "normal+openpose"),
    "sparse": (OFF, "keyframes"),
    "camera": (OFF, "motion_lora", "auto", "cameractrl"),
    "context": (OFF, "temporal", "unet", "loop"),
    "travel": (OFF, "travel"),
    "lora": (OFF, "style"),
    "reference": (OFF, "reference"),
    "init": (OFF, "init"),
    "free_init": (OFF, "free_init"),
    "motion": (OFF, "job", "windows"),
    "scheduler": (OFF, "lcm", "euler", "dpmpp_2m"),  # OFF: DDIM, the default
    "vae": (OFF, "tiny-ft"),  # OFF: the base's own VAE; a separate one (tests/support/tiny_vae.py)
    "guidance": (OFF, "none"),  # OFF: classifier-free guidance at 7.5; "none": guidance 1 (one UNet batch row)
}


def allowed(row: dict) -> bool:
    """Levels that only make sense together: one motion scale per window needs windows."""
    return not (row.get("motion") == "windows" and row.get("context", OFF) == OFF)


def uncovered(rows: list[dict]) -> set:
    """Every pair of levels of two factors (that `allowed` admits) that no row has."""
    need = set()
    for a, b in itertools.combinations(FACTORS, 2):
        for x, y in itertools.product(FACTORS[a], FACTORS[b]):
            if allowed({a: x, b: y}):
                need.add(((a, x), (b, y)))
    for row in rows:
        full = {f: row.get(f, OFF) for f in FACTORS}
        need -= {((a, full[a]), (b, full[b])) for a, b in itertools.combinations(FACTORS, 2)}
    return need


def removal_checks(rows: list[dict]) -> set[tuple[int, str]]:
    """(row index, factor) pairs whose job without that factor is worth running: enough that every feature is seen
    to act beside every level of every other factor it shares a row with (greedily, the check that shows the most
    such pairs first), instead of every feature of every row. Guidance is not taken out (it is not a feature)."""

    def shown(i: int, factor: str) -> set:
        row = rows[i]
        return {((factor, row[factor]), (f, v)) for f, v in row.items() if f != factor and v != OFF}

    candidates = {(i, f) for i, row in enumerate(rows) for f, v in row.items() if v != OFF and f != "guidance"}
    left = set().union(*(shown(i, f) for i, f in candidates))
    chosen = set()
    while left:
        best = max(sorted(candidates - chosen), key=lambda c: len(shown(*c) & left))
        chosen.add(best)
        left -= shown(*best)
    return chosen


def camera_path() -> dict:
    """An orbit around a subject (test_camera_motion), as the same camera rendering SIZE × SIZE."""
    from test_camera_motion import make_path, orbit
    from test_cameractrl import small

    return small(make_path(orbit, frames=FRAMES))


def _windows(row: dict) -> int:
    return len(context_windows(FRAMES, WINDOW["length"], WINDOW["overlap"], row.get("context") == "loop"))


def _init_frames() -> list[bytes]:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    return [png(255 * np.stack([xs, ys, (xs + ys + f / FRAMES) % 1], -1)) for f in range(FRAMES)]


# factor -> level -> (spec, guides, row) -> None: the level's change to the job
Apply = Callable[[dict, dict, dict], None]


def _pose() -> bytes:
    """OpenPose keypoints (COCO-18, x y confidence) of one person walking right across the frames."""
    rng = np.random.default_rng(5)
    body = rng.uniform(0.3 * SIZE, 0.7 * SIZE, (18, 2))
    frames = []
    for f in range(FRAMES):
        points = np.concatenate([body + (2 * f, 0), np.ones((18, 1))], 1)
        frames.append({"people": [{"pose_keypoints_2d": points.ravel().round(2).tolist()}]})
    return json.dumps(frames).encode()


def _control(kinds: tuple[str, ...]) -> Apply:
    def apply(spec, guides, row):
        spec["controlnets"] = [{"kind": k, "weight": 0.9} for k in kinds]
        for k in kinds:
            guides[GUIDE_FORM[k]] = [_pose()] if k == "openpose" else gradient_frames(FRAMES, seed=len(k))

    return apply


def _camera(level: str) -> Apply:
    def apply(spec, guides, row):
        if level == "motion_lora":  # the camera LoRAs by hand: no camera path
            spec["motion_loras"] = [{"name": "zoom_in", "weight": 1.0}]
            return
        spec["camera"] = camera_path()
        if level == "auto":
            spec["camera_motion"] = "auto"
        else:
            spec.update(camera_motion="cameractrl", cameractrl={"scale": 1.0})

    return apply


def _context(level: str) -> Apply:
    def apply(spec, guides, row):
        if level == "loop":
            spec["context"] = {**WINDOW, "loop": True, "fuse": "flat"}
        else:
            spec["context"] = {**WINDOW, "mode": level}

    return apply


def _motion(level: str) -> Apply:
    def apply(spec, guides, row):
        if level == "job":
            spec["motion_scale"] = 0.5
        else:  # applied after the context, which it needs
            spec["context"]["motion_scales"] = [0.4 + 0.6 * w for w in range(_windows(row))]

    return apply


def _set(**fields) -> Apply:
    def apply(spec, guides, row):
        spec.update(copy.deepcopy(fields))  # NEUTRAL changes the job's own copy

    return apply


def _sparse(spec, guides, row):
    spec["sparsectrl"] = {"model": "rgb", "keyframes": [0, FRAMES - 1], "weight": 1.0}
    guides["keyframe"] = gradient_frames(2, seed=9)


def _reference(spec, guides, row):
    spec["references"] = [{"weight": 1.0, "first": 1}]
    guides["reference"] = [png(REFERENCE_IMAGE)]


def _init(spec, guides, row):
    spec["init"] = {"strength": 0.75}
    guides["init"] = _init_frames()


LEVELS: dict[str, dict[str, Apply]] = {
    "control": {"depth": _control(("depth",)), "normal+openpose": _control(("normal", "openpose"))},
    "sparse": {"keyframes": _sparse},
    "camera": {level: _camera(level) for level in FACTORS["camera"][1:]},
    "context": {level: _context(level) for level in FACTORS["context"][1:]},
    "travel": {"travel": _set(prompts=[{"frame": 0, "prompt": "red"}, {"frame": FRAMES - 1, "prompt": "blue"}])},
    "lora": {"style": _set(loras=[{"name": "style", "weight": 1.0}])},
    "reference": {"reference": _reference},
    "init": {"init": _init},
    "free_init": {"free_init": _set(free_init={"iterations": 2})},
    "motion": {"job": _motion("job"), "windows": _motion("windows")},
    "scheduler": {level: _set(scheduler=level) for level in FACTORS["scheduler"][1:]},
    "vae": {"tiny-ft": _set(vae="tiny-ft")},
    "guidance": {"none": _set(guidance=1.0)},
}

# What a feature's neutral setting changes in a job that has it: the job must come out bit for bit as without it.
NEUTRAL: dict[str, Callable[[dict], None]] = {
    "camera:cameractrl": lambda spec: spec["cameractrl"].update(scale=0.0),
    "motion:job": lambda spec: spec.update(motion_scale=1.0),
    "motion:windows": lambda spec: spec["context"].update(motion_scales=[1.0] * len(spec["context"]["motion_scales"])),
    "reference:reference": lambda spec: spec["references"][0].update(weight=0.0),
    "free_init:free_init": lambda spec: spec["free_init"].update(iterations=1),
    "init:init": lambda spec: spec["init"].update(strength=1.0),
}


def settings(row: dict) -> dict:
    """What a row's jobs share whichever feature is taken out: the motion module (v3 where CameraCtrl is, which was
    trained on it; v2, the camera LoRAs' own, elsewhere) and the steps (3 with video-to-video: at strength 0.75 two
    of DDIM's three steps run, where of two steps only the last, at t = 0, would)."""
    if "pinned" in row:
        return row["pinned"]
    return {
        "motion_module": "v3" if row.get("camera") == "cameractrl" else "v2",
        "steps": 3 if row.get("init", OFF) != OFF else 2,
    }


def job(row: dict, neutral: str | None = None) -> tuple[dict, dict[str, list[bytes]]]:
    """The spec and guides of a row (factors left out are OFF); `neutral` ("factor:level") sets that feature to
    its neutral value."""
    spec = {
        "prompt": "a wooden marionette dancing",
        "negative_prompt": "blurry",
        "seed": 7,
        "guidance": 7.5,
        "width": SIZE,
        "height": SIZE,
        "frames": FRAMES,
        "base": "sd15",
        **settings(row),
    }
    guides: dict[str, list[bytes]] = {}
    for factor in FACTORS:  # in FACTORS' order: the motion scale per window after the context it needs
        level = row.get(factor, OFF)
        if level in LEVELS[factor]:
            LEVELS[factor][level](spec, guides, row)
    if neutral is not None:
        NEUTRAL[neutral](spec)
    return spec, guides


def without(row: dict, factor: str) -> dict:
    """The row with one feature taken out (the motion scale per window goes with the windows), its settings kept."""
    out = {**row, factor: OFF, "pinned": settings(row)}
    if not allowed(out):
        out["motion"] = OFF
    return out


def models_toml(root) -> Path:
    """The tiny models' config plus a tiny CameraCtrl (tests/support/tiny_cameractrl.py) named "cameractrl",
    written beside them once."""
    from tests.support import tiny_cameractrl
    from tests.support.tiny_models import UNET_CHANNELS

    root = Path(root)
    toml = root / "models_combos.toml"
    if not toml.exists():
        tiny_cameractrl.write(root / "cameractrl_combos.ckpt", UNET_CHANNELS)
        toml.write_text(
            (root / "models.toml").read_text() + '\n[camera_control.cameractrl]\nsource = "cameractrl_combos.ckpt"\n'
        )
    return toml
