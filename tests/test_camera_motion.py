"""Camera matching (server/camera/): synthetic camera paths with known answers, the same motion at other
scales and frame rates, cameras animated in real bpy, CameraCtrl input, and POST /plan with a camera path."""

from __future__ import annotations

import base64
import io
import json
import math
import sys
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import TOKEN

from server.camera import (
    COMPONENTS,
    THRESHOLDS,
    match,
    plot_png,
    plucker,
    realestate10k_lines,
    relative_poses,
    with_overrides,
)
from server.engine.windows import context_windows
from server.protocol import CAMERA_DIRECTIONS, MOTION_LORAS, SpecError, Weighted, parse_spec

try:
    from test_extension import PACKAGE
except ImportError:  # no bpy
    PACKAGE = None

SIZE = 512
F0 = 50 / 36 * SIZE  # a 50 mm lens on a 36 mm sensor, 512 px wide
I3 = np.eye(3)


def rot(axis, angle):
    """Rotation by `angle` about `axis` (right-handed)."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def make_path(pose, frames=16, fps=8, scale=1.0, first=1, world=None):
    """A protocol camera path from pose(t) -> (camera-to-world rotation, centre, focal px, median depth).

    The world frame is the first camera's OpenCV frame (x right, y down, z forward, so up is -y) unless `world`
    (a 4×4 rigid transform) moves everything. Translations and depths are multiplied by `scale`."""
    up = (0.0, -1.0, 0.0) if world is None else tuple(world[:3, :3] @ (0.0, -1.0, 0.0))
    out = {"fps": fps, "width": SIZE, "height": SIZE, "up": list(up), "frames": []}
    for k in range(frames):
        R, C, f, depth = pose(k / fps)
        c2w = np.eye(4)
        c2w[:3, :3], c2w[:3, 3] = R, np.asarray(C, float) * scale
        if world is not None:
            c2w = world @ c2w
        w2c = np.linalg.inv(c2w)
        out["frames"].append(
            {
                "frame": first + k,
                "K": [[f, 0.0, SIZE / 2], [0.0, f, SIZE / 2], [0.0, 0.0, 1.0]],
                "world_to_camera": w2c.tolist(),
                "depth": None if depth is None else depth * scale,
            }
        )
    return out


def still(t):
    return I3, (0, 0, 0), F0, 5.0


# name -> (pose, the one LoRA expected). Rates: turns 0.3 rad/s (~17°/s), slides 1 m/s at 4-5 m, lens 0.3/s.
MOTIONS = {
    "pan left by turning": (lambda t: (rot((0, 1, 0), -0.3 * t), (0, 0, 0), F0, 5.0), "pan_left"),
    "pan right by turning": (lambda t: (rot((0, 1, 0), 0.3 * t), (0, 0, 0), F0, 5.0), "pan_right"),
    "pan left by sliding": (lambda t: (I3, (-1.0 * t, 0, 0), F0, 4.0), "pan_left"),
    "pan right by sliding": (lambda t: (I3, (1.0 * t, 0, 0), F0, 4.0), "pan_right"),
    "tilt up by pitching": (lambda t: (rot((1, 0, 0), 0.3 * t), (0, 0, 0), F0, 5.0), "tilt_up"),
    "tilt down by pitching": (lambda t: (rot((1, 0, 0), -0.3 * t), (0, 0, 0), F0, 5.0), "tilt_down"),
    "tilt up by rising": (lambda t: (I3, (0, -1.0 * t, 0), F0, 4.0), "tilt_up"),  # OpenCV y points down
    "tilt down by sinking": (lambda t: (I3, (0, 1.0 * t, 0), F0, 4.0), "tilt_down"),
    "roll clockwise": (lambda t: (rot((0, 0, 1), 0.5 * t), (0, 0, 0), F0, 5.0), "roll_clockwise"),
    "roll anticlockwise": (lambda t: (rot((0, 0, 1), -0.5 * t), (0, 0, 0), F0, 5.0), "roll_anticlockwise"),
    "dolly in": (lambda t: (I3, (0, 0, 1.0 * t), F0, 5.0 - 1.0 * t), "zoom_in"),
    "dolly out": (lambda t: (I3, (0, 0, -1.0 * t), F0, 5.0 + 1.0 * t), "zoom_out"),
    "lens zoom in": (lambda t: (I3, (0, 0, 0), F0 * math.exp(0.3 * t), 5.0), "zoom_in"),
    "lens zoom out": (lambda t: (I3, (0, 0, 0), F0 * math.exp(-0.3 * t), 5.0), "zoom_out"),
}


def orbit(t, radius=5.0, speed=0.6, depth=10.0):
    """Circle a subject `radius` ahead, moving to the camera's right and turning left to keep it centred; the median
    depth seen is the backdrop behind the subject."""
    a = speed * t
    return rot((0, 1, 0), -a), (radius * math.sin(a), 0, radius - radius * math.cos(a)), F0, depth


def names(loras):
    return {m["name"] for m in loras}


def project(path, index, point):
    f = path["frames"][index]
    x = np.array(f["world_to_camera"]) @ np.array([*point, 1.0])
    u = np.array(f["K"]) @ x[:3]
    return u[:2] / u[2]


# --- the directions -------------------------------------------------------------------------------------------


def test_direction_table_covers_every_lora_once_with_opposites():
    assert list(CAMERA_DIRECTIONS) == list(MOTION_LORAS)
    pairs = {}
    for _name, (signal, sign, _) in CAMERA_DIRECTIONS.items():
        assert sign in (1, -1) and signal in THRESHOLDS
        pairs.setdefault(signal, set()).add(sign)
    assert pairs == {s: {1, -1} for s in THRESHOLDS}


@pytest.mark.parametrize("motion", MOTIONS)
def test_synthetic_paths_move_content_the_way_motion_loras_says(motion):
    """Pins the synthetic poses independently of the matcher: the on-screen drift of MOTION_LORAS' second column."""
    pose, lora = MOTIONS[motion]
    path = make_path(pose)
    screen = MOTION_LORAS[lora][0]
    c = SIZE / 2
    if "drifts" in screen or "grows" in screen or "shrinks" in screen:
        point = (1.0, 1.0, 5.0)  # right of and below the centre, at the median depth
        a, b = project(path, 0, point), project(path, -1, point)
        move = b - a
        expect = {
            "content drifts right": move[0] > 5,
            "content drifts left": move[0] < -5,
            "content drifts down": move[1] > 5,
            "content drifts up": move[1] < -5,
            "content grows": np.linalg.norm(b - c) > np.linalg.norm(a - c) + 5,
            "content shrinks": np.linalg.norm(b - c) < np.linalg.norm(a - c) - 5,
        }
        assert expect[screen], (motion, a, b)
    else:
        a, b = project(path, 0, (1.0, 0.0, 5.0)) - c, project(path, -1, (1.0, 0.0, 5.0)) - c
        turn = math.atan2(a[0] * b[1] - a[1] * b[0], a @ b)  # > 0: clockwise on screen (y down)
        assert (turn < -0.1) if screen == "content turns anticlockwise" else (turn > 0.1)


# --- matching synthetic paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("motion", MOTIONS)
def test_each_motion_picks_its_lora_and_only_it(motion):
    pose, lora = MOTIONS[motion]
    result = match(make_path(pose))
    assert names(result["motion_loras"]) == {lora}, result["rates"]
    assert result["motion_loras"][0]["weight"] >= 0.4
    assert [names(w["motion_loras"]) for w in result["windows"]] == [{lora}]


def test_static_camera_picks_nothing():
    result = match(make_path(still))
    assert result["motion_loras"] == [] and result["windows"][0]["motion_loras"] == []
    assert all(v == pytest.approx(0) for c in COMPONENTS for v in result["components"][c])


@pytest.mark.parametrize("fps", [8, 24])
@pytest.mark.parametrize("seed", range(4))
def test_hand_held_jitter_does_not_leak_through(fps, seed):
    rng = np.random.default_rng(seed)
    shakes = [(rot(rng.normal(size=3), math.radians(0.5) * rng.normal()), rng.normal(size=3) * 0.02) for _ in range(16)]
    path = make_path(lambda t: (shakes[round(t * fps)][0], shakes[round(t * fps)][1], F0, 5.0), fps=fps)
    result = match(path)
    assert result["motion_loras"] == [], result["rates"]
    assert all(w["motion_loras"] == [] for w in result["windows"])
    # the shake is real: frame to frame it moves the picture more than the dead zone
    assert max(abs(v) for v in result["signals"]["pan"] + result["signals"]["tilt"]) > THRESHOLDS["pan"][0]


def test_a_camera_pitched_down_that_pans_pans_and_does_not_roll():
    down = rot((1, 0, 0), math.radians(-25))  # pitched 25° down
    path = make_path(lambda t: (rot((0, -1, 0), 0.4 * t) @ down, (0, 0, 0), F0, 5.0))  # turns left about world up
    result = match(path)
    assert names(result["motion_loras"]) == {"pan_left"}, result["rates"]
    comp = result["components"]
    assert comp["roll"][0] == pytest.approx(-0.4 * math.sin(math.radians(25)), abs=1e-3)  # a body roll...
    assert max(abs(r) for r in comp["horizon_roll"]) < 1e-6  # ...the horizon stays
    assert comp["yaw"][0] == pytest.approx(-0.4 * math.cos(math.radians(25)), abs=1e-3)


def test_a_camera_looking_straight_down_that_spins_rolls():
    down = rot((1, 0, 0), -math.pi / 2)  # the optical axis along the world's down
    result = match(make_path(lambda t: (rot((0, -1, 0), -0.5 * t) @ down, (0, 0, 0), F0, 5.0)))
    assert names(result["motion_loras"]) == {"roll_clockwise"}, result["rates"]


def test_orbit_around_a_subject_is_a_pan_not_a_zoom():
    result = match(make_path(orbit))
    assert names(result["motion_loras"]) == {"pan_left"} and result["motion_loras"][0]["weight"] > 0.5
    comp = result["components"]
    assert all(y < 0 for y in comp["yaw"]) and all(s > 0 for s in comp["sideways"])  # turns left, slides right
    assert abs(result["rates"]["zoom"]) < THRESHOLDS["zoom"][0]


def test_pan_then_zoom_shows_in_the_windows():
    def pose(t):  # 15 frame steps of turning left, then a lens zoom in
        k = t * 8
        return rot((0, 1, 0), -0.3 * min(k, 15) / 8), (0, 0, 0), F0 * math.exp(0.3 * max(k - 15, 0) / 8), 5.0

    result = match(make_path(pose, frames=32), window=16, overlap=4)
    spans = [(w["start"], w["end"]) for w in result["windows"]]
    assert spans == [(0, 16), (12, 28), (16, 32)]
    assert names(result["windows"][0]["motion_loras"]) == {"pan_left"}
    assert names(result["windows"][-1]["motion_loras"]) == {"zoom_in"}
    assert names(result["motion_loras"]) == {"pan_left", "zoom_in"}


@pytest.mark.parametrize("motion", ["dolly in", "pan right by sliding", "tilt up by rising", "pan left by turning"])
def test_scene_scale_does_not_change_the_weights(motion):
    pose, _ = MOTIONS[motion]
    assert match(make_path(pose))["motion_loras"] == match(make_path(pose, scale=10.0))["motion_loras"]
    assert match(make_path(orbit))["motion_loras"] == match(make_path(orbit, scale=10.0))["motion_loras"]


@pytest.mark.parametrize(
    "motion", ["dolly in", "dolly out", "lens zoom in", "pan left by turning", "roll clockwise", "pan right by sliding"]
)
def test_frame_rate_does_not_change_the_weights(motion):
    pose, _ = MOTIONS[motion]
    slow = match(make_path(pose, frames=16, fps=8), window=64)  # 15/8 s
    fast = match(make_path(pose, frames=46, fps=24), window=64)  # 45/24 s: the same motion per second
    assert names(slow["motion_loras"]) == names(fast["motion_loras"])
    for a, b in zip(slow["motion_loras"], fast["motion_loras"]):
        assert a["weight"] == pytest.approx(b["weight"], abs=0.02)
    if motion in ("pan left by turning", "roll clockwise", "lens zoom in"):  # steady: any 16 frames agree
        assert match(make_path(pose, fps=24))["motion_loras"] == match(make_path(pose))["motion_loras"]


def test_max_weight_caps_and_scales():
    pose, _ = MOTIONS["dolly in"]
    full, half = match(make_path(pose))["motion_loras"], match(make_path(pose), max_weight=0.5)["motion_loras"]
    assert half[0]["weight"] == pytest.approx(full[0]["weight"] / 2, abs=1e-3)
    fast = match(make_path(lambda t: (rot((0, 1, 0), -3.0 * t), (0, 0, 0), F0, 5.0)), max_weight=0.8)
    assert fast["motion_loras"] == [{"name": "pan_left", "weight": 0.8}]


def test_a_path_without_any_depth_matches_turns_and_says_so():
    result = match(make_path(lambda t: (rot((0, 1, 0), 0.3 * t), (2.0 * t, 0, 0), F0, None)))
    assert names(result["motion_loras"]) == {"pan_right"}
    assert result["rates"]["pan"] == pytest.approx(0.3 * F0 / SIZE, abs=1e-4)  # the 2 m/s slide is not counted
    assert result["notes"] and "depth" in result["notes"][0]


def test_camera_schedule_is_matched_on_the_job_context_windows():
    """With "auto" and context windows, the camera is matched on exactly the windows the pipeline runs (not the
    path's own window/overlap): window w's LoRAs are what context window w applies."""
    from server.engine.planning import job_windows, motion_lora_names, motion_loras_for

    def pose(t):  # 15 frame steps of turning left, then a lens zoom in
        k = t * 8
        return rot((0, 1, 0), -0.3 * min(k, 15) / 8), (0, 0, 0), F0 * math.exp(0.3 * max(k - 15, 0) / 8), 5.0

    spec = parse_spec(
        {
            "prompt": "p",
            "frames": 32,
            "width": SIZE,
            "height": SIZE,
            "camera_motion": "auto",
            "context": {"length": 16, "overlap": 6},
            "camera": make_path(pose, frames=32),
        }
    )
    windows = job_windows(spec)
    assert [(w[0], w[-1] + 1) for w in windows] == [(0, 16), (10, 26), (16, 32)]
    _, camera = motion_loras_for(spec)
    assert [(w["start"], w["end"]) for w in camera["windows"]] == [(0, 16), (10, 26), (16, 32)]
    assert names(camera["windows"][0]["motion_loras"]) == {"pan_left"}
    assert names(camera["windows"][-1]["motion_loras"]) == {"zoom_in"}
    assert motion_lora_names(spec) >= {"pan_left", "zoom_in"}


def test_camera_windows_are_the_context_windows():
    def spans(frames, length=16, overlap=4):
        return [(w[0], w[-1] + 1) for w in context_windows(frames, length, overlap)]

    assert spans(8) == [(0, 8)] and spans(16) == [(0, 16)]
    assert spans(28) == [(0, 16), (12, 28)]
    assert spans(30) == [(0, 16), (12, 28), (14, 30)]
    assert spans(32, 16, 0) == [(0, 16), (16, 32)]
    path = make_path(MOTIONS["pan left by turning"][0], frames=30)
    assert [(w["start"], w["end"]) for w in match(path)["windows"]] == spans(30)
    looping = context_windows(30, 16, 4, loop=True)
    windows = match(path, windows=looping)["windows"]
    assert [(w["start"], w["end"]) for w in windows] == [(w[0], w[0] + 16) for w in looping]
    assert all(names(w["motion_loras"]) == {"pan_left"} for w in windows)  # the wrap is no camera motion


def test_manual_weights_override_by_name_and_keep_opposites_exclusive():
    matched = [{"name": "pan_left", "weight": 0.9}, {"name": "zoom_in", "weight": 0.4}]
    assert with_overrides(matched, [Weighted("zoom_in", 0.7)]) == [
        {"name": "zoom_in", "weight": 0.7},
        {"name": "pan_left", "weight": 0.9},
    ]
    assert with_overrides(matched, [Weighted("pan_right", 0.3)]) == [
        {"name": "zoom_in", "weight": 0.4},
        {"name": "pan_right", "weight": 0.3},
    ]
    assert with_overrides(matched, [Weighted("pan_left", 0.0)]) == [{"name": "zoom_in", "weight": 0.4}]


def test_plot_is_a_png():
    from PIL import Image

    result = match(make_path(MOTIONS["pan left by turning"][0], frames=24))
    image = Image.open(io.BytesIO(plot_png(result["components"], result["windows"])))
    assert image.format == "PNG" and image.size == (640, 400)
    still_plot = match(make_path(still))
    assert plot_png(still_plot["components"], still_plot["windows"])[:8] == b"\x89PNG\r\n\x1a\n"


# --- CameraCtrl input -----------------------------------------------------------------------------------------


def test_realestate10k_lines():
    path = make_path(MOTIONS["dolly in"][0], frames=3, first=5)
    lines = realestate10k_lines(path)
    assert len(lines) == 3
    entry = [float(x) for x in lines[1].split()]
    assert len(entry) == 19 and entry[0] == pytest.approx(6 / 8 * 1e6)
    assert entry[1:5] == pytest.approx([F0 / SIZE, F0 / SIZE, 0.5, 0.5]) and entry[5:7] == [0.0, 0.0]
    w2c = np.array(entry[7:]).reshape(3, 4)  # how CameraCtrl's Camera reads a line
    assert w2c == pytest.approx(np.array(path["frames"][1]["world_to_camera"])[:3], abs=1e-6)


def test_plucker_embedding_shape_and_known_rays():
    world = np.eye(4)
    world[:3, :3], world[:3, 3] = rot((1, 2, 3), 0.7), (3.0, -2.0, 1.0)  # an arbitrary world frame
    # frame 1: the camera slid 1 right and turned 90° to its right
    pose = lambda t: (rot((0, 1, 0), math.pi / 2 * t * 8), (t * 8, 0, 0), F0, 5.0)  # noqa: E731
    path = make_path(pose, frames=2, world=world)
    emb = plucker(path, 16, 16)
    assert emb.shape == (2, 6, 16, 16) and emb.dtype == np.float32
    assert np.allclose(relative_poses(path)[0], np.eye(4))
    moment, d = emb[:, :3], emb[:, 3:]
    assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5)
    assert np.allclose((moment * d).sum(axis=1), 0, atol=1e-5)  # a Plücker line: m ⟂ d
    assert np.allclose(moment[0], 0)  # the first camera sits at the origin
    # pixel (8, 8) of 16×16 straddles the principal point; its centre (8.5, 8.5) is half a pixel right/down of it
    half = 0.5 / (F0 * 16 / SIZE)
    d0 = np.array([half, half, 1.0]) / np.linalg.norm([half, half, 1.0])
    assert np.allclose(emb[0, 3:, 8, 8], d0, atol=1e-6)
    # in frame 1 the camera looks along the first camera's +x (its old right) from o = (1, 0, 0)
    d1 = rot((0, 1, 0), math.pi / 2) @ d0
    assert np.allclose(emb[1, 3:, 8, 8], d1, atol=1e-6)
    assert np.allclose(emb[1, :3, 8, 8], np.cross([1.0, 0, 0], d1), atol=1e-6)
    # the world frame does not matter: poses are relative to the first camera
    assert np.allclose(emb, plucker(make_path(pose, frames=2), 16, 16), atol=1e-5)


# --- the camera path in the protocol --------------------------------------------------------------------------


def spec_with(camera, **over):
    return {
        "prompt": "p",
        "frames": len(camera.get("frames", [])) if isinstance(camera.get("frames"), list) else 16,
        "camera_motion": "auto",
        "camera": camera,
        **over,
    }


def broken(edit):
    path = make_path(still, frames=4)
    edit(path)
    return path


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda p: p.update(fps=0), "camera.fps"),
        (lambda p: p.update(fps="8"), "camera.fps"),
        (lambda p: p.pop("width"), "camera.width"),
        (lambda p: p.update(height=-4), "camera.height"),
        (lambda p: p.update(frames=p["frames"][:1]), "camera.frames"),
        (lambda p: p.update(lens=50), "camera.lens"),
        (lambda p: p.update(overlap=16), "camera.overlap"),
        (lambda p: p.update(max_weight=3), "camera.max_weight"),
        (lambda p: p["frames"][2].update(K=[[1, 0, 0], [0, 1, 0]]), "camera.frames[2].K"),
        (lambda p: p["frames"][2].update(K=[[-700, 0, 256], [0, 700, 256], [0, 0, 1]]), "camera.frames[2].K"),
        (lambda p: p["frames"][1].update(world_to_camera=np.eye(3).tolist()), "camera.frames[1].world_to_camera"),
        (lambda p: p["frames"][1].update(world_to_camera=(2 * np.eye(4)).tolist()), "camera.frames[1].world_to_camera"),
        (
            lambda p: p["frames"][1].update(world_to_camera=np.diag([1, 1, -1, 1.0]).tolist()),
            "camera.frames[1].world_to_camera",
        ),
        (lambda p: p["frames"][3].update(depth=0), "camera.frames[3].depth"),
        (lambda p: p["frames"][3].update(depth=-2.5), "camera.frames[3].depth"),
        (lambda p: p["frames"][3].update(frame=2), "camera.frames[3].frame"),
        (lambda p: p["frames"][0].update(focal=1), "camera.frames[0].focal"),
        (lambda p: p.update(up=[0, 0, 0]), "camera.up"),
        (lambda p: p.update(up=[0, 1]), "camera.up"),
    ],
)
def test_bad_camera_paths_name_the_field(edit, field):
    with pytest.raises(SpecError) as exc:
        parse_spec(spec_with(broken(edit)))
    assert field in {f for f, _ in exc.value.errors}, exc.value.errors


def test_camera_frames_must_match_the_job():
    with pytest.raises(SpecError) as exc:
        parse_spec(spec_with(make_path(still, frames=4), frames=5))
    assert "camera.frames" in {f for f, _ in exc.value.errors}


def test_a_frame_with_nothing_in_view_may_have_no_depth():
    path = make_path(MOTIONS["dolly in"][0], frames=6)
    path["frames"][2]["depth"] = None
    assert names(match(parse_spec(spec_with(path)).camera)["motion_loras"]) == {"zoom_in"}


# --- POST /plan (in process) ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    from fastapi.testclient import TestClient

    from server.api import Settings, create_app
    from server.loaders import ModelConfig

    settings = Settings(
        models=ModelConfig.load(tiny_models / "models.toml"), data_dir=tmp_path_factory.mktemp("camera-jobs")
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1:7860") as client:
        yield client


def tiny(camera, **over):
    spec = {
        "prompt": "a marionette",
        "seed": 1,
        "steps": 2,
        "width": 64,
        "height": 64,
        "frames": len(camera["frames"]),
        "base": "sd15",
        "motion_module": "v2",
        "camera_motion": "auto",
        "camera": camera,
    }
    spec.update(over)
    return spec


def test_plan_with_a_camera_returns_weights_windows_components_and_plot(server):
    from PIL import Image

    r = server.post("/plan", json=tiny(make_path(MOTIONS["pan left by turning"][0], frames=24)))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert names(plan["motion_loras"]) == {"pan_left"} and plan["matched_motion_loras"] == plan["motion_loras"]
    assert [(w["start"], w["end"]) for w in plan["windows"]] == [(0, 16), (8, 24)]
    assert all(names(w["motion_loras"]) == {"pan_left"} for w in plan["windows"])
    assert set(COMPONENTS) <= set(plan["components"]) and len(plan["components"]["yaw"]) == 23
    assert Image.open(io.BytesIO(base64.b64decode(plan["plot_png"]))).format == "PNG"
    assert not any("v2" in n for n in plan["notes"])


def test_plan_manual_overrides_and_other_modules(server):
    path = make_path(MOTIONS["pan left by turning"][0], frames=16)
    plan = server.post("/plan", json=tiny(path, motion_loras=[{"name": "zoom_in", "weight": 0.3}])).json()
    assert plan["motion_loras"] == [{"name": "zoom_in", "weight": 0.3}, {"name": "pan_left", "weight": 1.0}]
    manual = server.post("/plan", json=tiny(path, camera_motion="manual")).json()
    assert manual["motion_loras"] == [] and names(manual["matched_motion_loras"]) == {"pan_left"}
    v3 = server.post("/plan", json=tiny(path, motion_module="v3")).json()
    assert any("v2" in n and "little effect" in n for n in v3["notes"])


def test_plan_names_the_bad_camera_field(server):
    path = make_path(still, frames=4)
    path["frames"][1]["world_to_camera"] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    r = server.post("/plan", json=tiny(path))
    assert r.status_code == 422
    assert any(d["field"] == "camera.frames[1].world_to_camera" for d in r.json()["detail"]), r.text


# --- real Blender: the extension's own capture code, the installed add-on, the real server ---------------------
# Marked `blender`: `make test` runs them on Blender 4.5 and 5.0.


@pytest.fixture
def bpy_scene():
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.render.fps = 8
    scene.frame_start, scene.frame_end = 1, 16
    cube = bpy.data.objects.new("Cube", bpy.data.meshes.new("Cube"))
    scene.collection.objects.link(cube)
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    return scene, cam


def captured(scene, cam, key):
    """Animate the camera (key(frame) sets it), then capture like Generate does; depth = distance to the cube."""
    from backend.camera import active_camera, camera_path, project, world_to_camera

    for frame in (1, 16):
        key(frame)
        cam.keyframe_insert("location", frame=frame)
        cam.keyframe_insert("rotation_euler", frame=frame)
    depths = []
    for frame in range(1, 17):
        scene.frame_set(frame)
        depths.append(project([[1, 0, 0], [0, 1, 0], [0, 0, 1]], world_to_camera(active_camera(scene)), (0, 0, 0))[2])
    return match(camera_path(scene, range(1, 17), depths))


@pytest.mark.blender
def test_blender_camera_turning_left_is_pan_left(bpy_scene):
    scene, cam = bpy_scene
    cam.location = (0, -6, 0)

    def key(frame):  # looking along +Y, level; turning about world Z by +40° over the shot is a turn to the left
        cam.rotation_euler = (math.pi / 2, 0, math.radians(40) * (frame - 1) / 15)

    result = captured(scene, cam, key)
    assert names(result["motion_loras"]) == {"pan_left"} and result["motion_loras"][0]["weight"] > 0.5
    assert all(y < 0 for y in result["components"]["yaw"])


@pytest.mark.blender
def test_blender_camera_pitched_down_panning_left_is_only_pan_left(bpy_scene):
    scene, cam = bpy_scene
    cam.location = (0, -6, 2.5)

    def key(frame):  # 21° below the horizon, turning about the world's Z
        cam.rotation_euler = (1.2, 0, math.radians(40) * (frame - 1) / 15)

    result = captured(scene, cam, key)
    assert names(result["motion_loras"]) == {"pan_left"}, result["rates"]


@pytest.mark.blender
def test_blender_dolly_toward_a_cube_is_zoom_in(bpy_scene):
    scene, cam = bpy_scene
    cam.rotation_euler = (math.pi / 2, 0, 0)

    def key(frame):
        cam.location = (0, -8 + 4 * (frame - 1) / 15, 0)

    result = captured(scene, cam, key)
    assert names(result["motion_loras"]) == {"zoom_in"} and result["motion_loras"][0]["weight"] > 0.5


@pytest.mark.blender
def test_panel_text_comes_from_the_done_event(extension, tmp_path):
    """The installed add-on: a done event of an "auto" job becomes the Camera Motion panel's line; manual does not."""
    import bpy

    generate = sys.modules[f"{PACKAGE}.operators.generate"]
    runtime = bpy.context.window_manager.marionette
    runtime.camera_match = ""
    done = (
        "done",
        {"frames": 0, "motion_loras": [{"name": "pan_left", "weight": 0.8}, {"name": "zoom_in", "weight": 0.35}]},
    )
    job = SimpleNamespace(
        spec=SimpleNamespace(frames=16, steps=2, frame_start=1, camera_motion="manual"), out_dir=tmp_path
    )
    assert generate.apply_messages(bpy.context, job, [done]) == "done" and runtime.camera_match == ""
    job.spec.camera_motion = "auto"
    generate.apply_messages(bpy.context, job, [done])
    assert runtime.camera_match == "pan left 0.8, zoom in 0.35"
    generate.apply_messages(bpy.context, job, [("done", {"frames": 0, "motion_loras": []})])
    assert runtime.camera_match.startswith("no camera motion")


@pytest.mark.blender
def test_generate_from_camera_end_to_end(extension, tiny_server, tmp_path):
    """Generate in the installed add-on with Camera motion "From camera": the real capture, the real server."""
    import bpy
    from test_extension import point_at, scene_with_camera

    scene = scene_with_camera(tmp_path, frames=4, steps=2)
    point_at(extension, tiny_server.url)
    settings = scene.marionette
    settings.camera_motion, settings.use_normal, settings.lora_zoom_in = "auto", False, 0.0
    cam = scene.camera  # 21° below the horizon, at 24 fps turning left ~6° a frame
    for frame in (1, 4):
        cam.rotation_euler = (1.2, 0, math.radians(6) * (frame - 1))
        cam.keyframe_insert("rotation_euler", frame=frame)
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    runtime = bpy.context.window_manager.marionette
    assert runtime.camera_match.startswith("pan left") and "roll" not in runtime.camera_match, runtime.camera_match

    def get(route):
        request = urllib.request.Request(tiny_server.url + route, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    plan = get(f"/jobs/{runtime.job_id}/manifest")["plan"]  # the schedule is kept; the plot lies beside it
    assert plan["camera_motion"] == "auto" and "plot_png" not in plan
    assert names(plan["motion_loras"]) == {"pan_left"} and plan["windows"][0]["motion_loras"] == plan["motion_loras"]
    assert len(plan["components"]["yaw"]) == 3
    assert "motion_lora:pan_left" in get("/health")["loaded"]
