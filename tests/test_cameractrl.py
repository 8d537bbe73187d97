"""CameraCtrl (server/engine/cameractrl*.py, server/loaders/cameractrl.py, server/camera/cameractrl.py): the public
checkpoint layout at tiny and full size, the pose input from real Blender camera paths checked against an
independent computation, the conditioning's effect and its scale-0 identity, per-window poses, and a whole job
through the server with ControlNet, SparseCtrl keyframes and context windows in the same loop."""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from helpers import SIZE, gradient_frames, multipart, png, read_events
from test_camera_motion import MOTIONS, make_path, orbit, still

from server.camera import plucker, relative_poses, scene_scale, window_input
from server.engine.cameractrl import CameraCtrl, attention_path
from server.engine.conditioning import CameraPoses
from server.engine.store import ModelStore
from server.engine.windows import ContextWindows
from server.loaders import CheckpointError, ModelConfig, load_camera_control
from server.protocol import SpecError, parse_spec
from tests.support import tiny_cameractrl
from tests.support.tiny_models import UNET_CHANNELS

FRAMES, STEPS = 4, 2
# Full size, from the original code (tests/support/tiny_cameractrl.py): the pose encoder and the 20 qkv_merge layers.
ENCODER_PARAMS, MERGE_PARAMS, ENCODER_TENSORS, MERGE_TENSORS = 199_262_400, 18_961_600, 150, 40


@pytest.fixture(scope="module")
def models(tiny_models):
    """The tiny models plus a tiny CameraCtrl file in the public layout and a model config naming it."""
    tiny_cameractrl.write(tiny_models / "cameractrl_tiny.ckpt", UNET_CHANNELS)
    toml = tiny_models / "models_cameractrl.toml"
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_models / "sd15", subfolder="unet")
    torch.save(tiny_cameractrl.realestate_lora(unet), tiny_models / "RealEstate10K_LoRA_tiny.ckpt")
    toml.write_text(
        (tiny_models / "models.toml").read_text()
        + '\n[camera_control.cameractrl]\nsource = "cameractrl_tiny.ckpt"\n'
        + '\n[lora.realestate10k]\nsource = "RealEstate10K_LoRA_tiny.ckpt"\n'
    )
    return toml


@pytest.fixture(scope="module")
def store(models):
    return ModelStore(ModelConfig.load(models), device="cpu", dtype="float32")


def small(path: dict) -> dict:
    """A 512-px protocol path (test_camera_motion.make_path) as the same camera rendering SIZE × SIZE."""
    s = SIZE / path["width"]
    out = {**path, "width": SIZE, "height": SIZE, "frames": []}
    for f in path["frames"]:
        K = np.array(f["K"]) * s
        K[2] = (0, 0, 1)
        out["frames"].append({**f, "K": K.tolist()})
    return out


def poses(cc: CameraCtrl, path: dict, scale: float = 1.0) -> CameraPoses:
    return CameraPoses(cc, lambda idx: torch.from_numpy(window_input(path, idx, SIZE, SIZE)[0]), scale)


def generate(pipe, frames=FRAMES, **kw):
    args = dict(
        prompt="a marionette",
        negative_prompt="blurry",
        num_frames=frames,
        height=SIZE,
        width=SIZE,
        steps=STEPS,
        guidance=7.5,
        generator=torch.Generator().manual_seed(3),
    )
    args.update(kw)
    return pipe.generate(**args)


@contextmanager
def encoder_inputs(cc: CameraCtrl):
    """Every Plücker tensor the pose encoder receives inside the block."""
    seen = []
    handle = cc.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    try:
        yield seen
    finally:
        handle.remove()


# --- the checkpoint layout -----------------------------------------------------------------------------------------


def test_tiny_checkpoint_loads_every_key_and_conditions_every_v3_motion_module(store, models):
    cc = store.camera_control("cameractrl")
    encoder_sd, attention_sd = tiny_cameractrl.state_dicts(UNET_CHANNELS, UNET_CHANNELS)
    assert sum(p.numel() for p in cc.parameters()) == sum(
        v.numel() for k, v in {**encoder_sd, **attention_sd}.items() if not k.endswith(".pe")
    )
    assert cc.encoder.channels == UNET_CHANNELS and cc.max_frames == 16 and len(cc.paths) == 20
    for key, value in encoder_sd.items():  # every tensor of the file is where the original layout puts it
        assert torch.equal(cc.encoder.state_dict()[key], value), key
    unet = store.pipeline("sd15", "v3").unet
    installed = cc.install(unet)
    try:
        assert sorted(installed.previous) == sorted({attention_path(k) for k in attention_sd})
        assert all(p.split(".")[0] in ("down_blocks", "up_blocks") and p.endswith("attn1") for p in cc.paths)
    finally:
        installed.remove()
    assert not any(
        type(m.processor).__name__ == "PoseConditionedProcessor" for m in unet.modules() if hasattr(m, "processor")
    )


def test_full_size_layout_every_key_used_parameter_count(tmp_path):
    """The public layout at full size (meta tensors, no memory): the encoder and merges take every key with its
    shape (strict), and they fit the full-size SD1.5 + v3 motion UNet built from the shipped configs."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from server.loaders import CONFIGS

    encoder = {k: torch.empty(s, device="meta") for k, s in tiny_cameractrl.encoder_layout().items()}
    attention = {k: torch.empty(s, device="meta") for k, s in tiny_cameractrl.attention_layout().items()}
    assert (len(encoder), len(attention)) == (ENCODER_TENSORS, MERGE_TENSORS)
    cc = CameraCtrl.from_state_dicts(encoder, attention)
    assert cc.encoder.channels == tiny_cameractrl.FULL and cc.encoder.downscale == 8 and cc.max_frames == 16
    assert set(cc.encoder.state_dict()) == set(encoder)
    assert sum(p.numel() for p in cc.encoder.parameters()) == ENCODER_PARAMS  # 199.3 M
    assert sum(p.numel() for p in cc.merges.parameters()) == MERGE_PARAMS  # 19.0 M
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIGS / "sd15", subfolder="unet"))
        adapter = MotionAdapter.from_config(MotionAdapter.load_config(CONFIGS / "motion_adapter_v3"))
        motion = UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)
    installed = cc.install(motion)
    assert len(installed.previous) == 20
    installed.remove()


def test_bad_cameractrl_files_name_the_problem(tmp_path):
    encoder, attention = tiny_cameractrl.state_dicts(UNET_CHANNELS, UNET_CHANNELS)
    torch.save({"pose_encoder_state_dict": encoder}, tmp_path / "half.ckpt")
    with pytest.raises(CheckpointError, match="attention_processor_state_dict"):
        load_camera_control(str(tmp_path / "half.ckpt"))
    del encoder["encoder_down_attention_blocks.1.0.ff_norm.bias"]
    torch.save(
        {"pose_encoder_state_dict": encoder, "attention_processor_state_dict": attention}, tmp_path / "missing.ckpt"
    )
    with pytest.raises(CheckpointError, match="not the CameraCtrl layout"):
        load_camera_control(str(tmp_path / "missing.ckpt"))


def test_realestate10k_lora_layout_loads_as_an_image_lora(store):
    """CameraCtrl's optional RealEstate10K image LoRA (lora_state_dict, old attention-processor keys) is an image
    LoRA like any other: every one of its layers lands on the UNet and it changes the prediction."""
    pipe = store.pipeline("sd15", "v3")
    x = torch.randn((1, 4, 2, 8, 8), generator=torch.Generator().manual_seed(0))
    text = torch.randn((2, 77, 16), generator=torch.Generator().manual_seed(1))

    def predict():
        return pipe.unet(x, 10, encoder_hidden_states=text).sample

    store.set_loras(pipe, [])
    before = predict()
    try:
        store.set_loras(pipe, [("lora", "realestate10k", 1.0)])
        adapted = [
            n
            for n, m in pipe.unet.named_modules()
            if n.endswith(".lora_A") and "realestate10k" in str(getattr(m, "keys", list)())
        ]
        assert len(adapted) == 4 * 2 * 16  # to_q/k/v/out of attn1 and attn2 in all 16 transformer blocks
        assert not torch.allclose(predict(), before)
        store.set_loras(pipe, [("lora", "realestate10k", 0.0)])
        assert torch.equal(predict(), before)
    finally:
        store.set_loras(pipe, [])


# --- poses from the camera path -------------------------------------------------------------------------------------


@pytest.fixture
def bpy_scene():
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    scene.render.fps = 8
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    return scene, cam


def blender_camera(scene, cam, key, frames=8):
    """Animate the camera with key(frame) on every frame and capture its path as Generate does (depth: the planar
    distance to the world origin, where the subject stands). Returns the path and, per frame, Blender's own
    camera-to-world matrix, focal length in pixels and depth, read independently of the capture code."""
    from backend.camera import camera_path

    for frame in range(1, frames + 1):
        key(frame)
        for what in ("location", "rotation_euler"):
            cam.keyframe_insert(what, frame=frame)
        cam.data.keyframe_insert("lens", frame=frame)
    truth = []
    for frame in range(1, frames + 1):
        scene.frame_set(frame)
        M = np.array(cam.matrix_world, dtype=np.float64)
        depth = -(np.linalg.inv(M) @ np.array([0.0, 0.0, 0.0, 1.0]))[2]
        truth.append((M, cam.data.lens / cam.data.sensor_width * SIZE, depth))
    return camera_path(scene, range(1, frames + 1), [t[2] for t in truth]), truth


def look_at(cam, eye, target=(0.0, 0.0, 0.0), roll=0.0):
    from mathutils import Vector

    cam.location = eye
    quat = (Vector(target) - Vector(eye)).to_track_quat("-Z", "Y")
    cam.rotation_euler = quat.to_euler()
    cam.rotation_euler.rotate_axis("Z", roll)


# The holdout cases of the LoRA matcher (test_camera_motion), animated in Blender.
BLENDER_MOVES = {
    "pan": lambda cam, k: look_at(cam, (0, -6, 1), (math.sin(0.08 * k) * 6, 0, 1)),
    "tilt": lambda cam, k: look_at(cam, (0, -6, 1), (0, 0, 1 + 0.5 * k)),
    "zoom": lambda cam, k: (look_at(cam, (0, -8 + 0.5 * k, 1)), setattr(cam.data, "lens", 35 + 4 * k)),
    "roll": lambda cam, k: look_at(cam, (0, -6, 1), roll=0.1 * k),
    "orbit": lambda cam, k: look_at(cam, (6 * math.sin(0.15 * k), -6 * math.cos(0.15 * k), 2)),
}
OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # Blender camera axes (x right, y up, looking down -z) to OpenCV's


@pytest.mark.parametrize("move", BLENDER_MOVES)
def test_blender_moves_give_the_blender_cameras_relative_poses(bpy_scene, move):
    scene, cam = bpy_scene
    path, truth = blender_camera(scene, cam, lambda frame: BLENDER_MOVES[move](cam, frame - 1))
    for frames in (list(range(8)), [3, 4, 5, 6]):  # the clip, and a window starting later
        first = truth[frames[0]][0] @ OPENCV
        got = relative_poses(path, frames)
        for rel, k in zip(got, frames):
            expected = np.linalg.inv(first) @ truth[k][0] @ OPENCV
            assert np.allclose(rel[:3, :3], expected[:3, :3], atol=1e-5), (move, k)
            assert np.allclose(rel[:3, 3], expected[:3, 3], atol=1e-5), (move, k)
        assert np.allclose(got[0], np.eye(4), atol=1e-6)
    assert not np.allclose(relative_poses(path)[-1], np.eye(4), atol=1e-3)  # the camera did move


def independent_plucker(truth, frames, height, width):
    """CameraCtrl's ray_condition written from Blender's own camera data: K from lens and sensor, poses relative
    to the window's first frame in OpenCV axes, translations over the window's median depth; torch, float64."""
    first = truth[frames[0]][0] @ OPENCV
    unit = float(np.median([truth[k][2] for k in frames]))
    out = []
    for k in frames:
        c2w = torch.tensor(np.linalg.inv(first) @ truth[k][0] @ OPENCV)
        c2w[:3, 3] /= unit
        f = truth[k][1] * width / SIZE
        j, i = torch.meshgrid(
            torch.arange(height, dtype=torch.float64) + 0.5,
            torch.arange(width, dtype=torch.float64) + 0.5,
            indexing="ij",
        )
        d = torch.stack([(i - width / 2) / f, (j - height / 2) / f, torch.ones_like(i)], -1)
        d = (d / d.norm(dim=-1, keepdim=True)) @ c2w[:3, :3].T
        o = c2w[:3, 3].expand_as(d)
        out.append(torch.cat([torch.linalg.cross(o, d), d], -1).permute(2, 0, 1))
    return torch.stack(out)


def test_encoder_receives_the_plucker_embedding_of_the_blender_camera(bpy_scene, store):
    scene, cam = bpy_scene
    path, truth = blender_camera(scene, cam, lambda frame: BLENDER_MOVES["orbit"](cam, frame - 1), frames=FRAMES)
    cc = store.camera_control("cameractrl")
    with encoder_inputs(cc) as seen:
        cc.encode(torch.from_numpy(window_input(path, list(range(FRAMES)), SIZE, SIZE)[0]))
    (received,) = seen
    assert received.shape == (1, 6, FRAMES, SIZE, SIZE)
    expected = independent_plucker(truth, list(range(FRAMES)), SIZE, SIZE)
    assert torch.allclose(received[0].transpose(0, 1).double(), expected, atol=1e-5)
    assert received[0, :3, 0].abs().max() == 0 and received[0, :3, -1].abs().max() > 0.05  # o = 0 at the start


def test_aspect_fix_matches_cameractrl_for_a_wider_source():
    """A 16:9 path generated at 64×48: CameraCtrl's rescale_fxy (scale fx by the covering factor, keep the
    normalised cx) for a centred principal point."""
    path = make_path(MOTIONS["dolly in"][0], frames=2)
    path["width"], path["height"] = 1280, 720
    for f in path["frames"]:
        f["K"] = [[900.0, 0.0, 640.0], [0.0, 900.0, 360.0], [0.0, 0.0, 1.0]]
    emb = plucker(path, 48, 64)
    fx_n, fy_n = 900 / 1280, 900 / 720  # CameraCtrl's normalised intrinsics
    resized_w = 48 * (1280 / 720)  # its pose_wh_ratio > sample_wh_ratio branch
    fx, fy, cx, cy = resized_w * fx_n, fy_n * 48, 0.5 * 64, 0.5 * 48
    x, y = (10 + 0.5 - cx) / fx, (7 + 0.5 - cy) / fy
    d = np.array([x, y, 1.0]) / np.linalg.norm([x, y, 1.0])
    assert np.allclose(emb[0, 3:, 7, 10], d, atol=1e-6)


def test_translation_unit_is_the_median_scene_depth():
    path = make_path(MOTIONS["pan right by sliding"][0], frames=8)  # 1 m/s at 4 m, 8 fps
    far = make_path(MOTIONS["pan right by sliding"][0], frames=8, scale=10.0)  # the same shot, 10× the scene
    assert scene_scale(path) == pytest.approx(4.0) and scene_scale(far) == pytest.approx(40.0)
    a, depth = window_input(path, list(range(8)), 32, 32)
    assert depth == pytest.approx(4.0) and np.allclose(a, window_input(far, list(range(8)), 32, 32)[0], atol=1e-5)
    assert relative_poses(path, scale=depth)[-1][0, 3] == pytest.approx(7 / 8 / 4.0)


# --- the conditioning ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v3(store):
    pipe = store.pipeline("sd15", "v3")
    store.set_loras(pipe, [])
    return pipe, store.camera_control("cameractrl")


@pytest.fixture(scope="module")
def baseline(v3):
    return generate(v3[0])


def test_scale_zero_is_the_v3_path_bit_for_bit(v3, baseline):
    pipe, cc = v3
    moving = small(make_path(orbit, frames=FRAMES))
    assert np.array_equal(generate(pipe, camera=poses(cc, moving, scale=0.0)), baseline)
    assert not any(
        type(m.processor).__name__ == "PoseConditionedProcessor"  # nothing stays installed
        for m in pipe.unet.modules()
        if hasattr(m, "processor")
    )


def test_static_and_moving_cameras_differ_and_the_same_path_repeats(v3, baseline):
    pipe, cc = v3
    moving = small(make_path(orbit, frames=FRAMES))
    a = generate(pipe, camera=poses(cc, moving))
    b = generate(pipe, camera=poses(cc, moving))
    static = generate(pipe, camera=poses(cc, small(make_path(still, frames=FRAMES))))
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - static).mean() > 0.5, np.abs(a.astype(int) - static).mean()
    assert not np.array_equal(static, baseline)


def test_each_context_window_gets_poses_relative_to_its_own_first_frame(v3):
    pipe, cc = v3
    path = small(make_path(orbit, frames=8))
    with encoder_inputs(cc) as seen:
        generate(pipe, frames=8, steps=1, camera=poses(cc, path), context=ContextWindows(length=4, overlap=2))
    windows = [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7]]
    assert len(seen) == len(windows)  # each window encoded once, not once per step
    for x, idx in zip(seen, windows):
        emb = x[0].transpose(0, 1).numpy()
        assert np.abs(emb[0, :3]).max() == 0  # the window's first camera sits at its origin
        # its first frame's rays are the camera's own: no rotation relative to itself
        assert np.allclose(emb[0, 3:], plucker(path, SIZE, SIZE, [idx[0]])[0, 3:], atol=1e-6)
        # independent: the orbit's camera-to-world (make_path's world = the clip's first camera) made relative
        c2w = []
        for k in idx:
            R, C, _, _ = orbit(k / 8)
            m = np.eye(4)
            m[:3, :3], m[:3, 3] = R, C
            c2w.append(m)
        rel = [np.linalg.inv(c2w[0]) @ m for m in c2w]
        unit = scene_scale(path, idx)
        for n, m in enumerate(rel):
            assert np.allclose(emb[n, :3, 5, 9], np.cross(m[:3, 3] / unit, emb[n, 3:, 5, 9]), atol=1e-5)
            assert np.allclose(emb[n, 3:, 5, 9], m[:3, :3] @ emb[0, 3:, 5, 9], atol=1e-5)


def test_a_window_longer_than_the_clip_encodes_the_clip_once(v3):
    pipe, cc = v3
    path = small(make_path(orbit, frames=8))
    with encoder_inputs(cc) as seen:
        generate(pipe, frames=8, steps=1, camera=poses(cc, path), context=ContextWindows(length=24, overlap=4))
    assert [x.shape[2] for x in seen] == [8]  # (batch, channels, frames, h, w): the 8 frames, within 16 positions


# --- the spec and the server ---------------------------------------------------------------------------------------


def spec(path, **over):
    out = {
        "prompt": "a marionette",
        "seed": 1,
        "steps": STEPS,
        "width": SIZE,
        "height": SIZE,
        "frames": len(path["frames"]),
        "base": "sd15",
        "motion_module": "v3",
        "camera_motion": "cameractrl",
        "camera": path,
    }
    out.update(over)
    return out


@pytest.mark.parametrize(
    "over, field",
    [
        ({"camera": None}, "camera_motion"),
        ({"camera_motion": "auto", "cameractrl": {"scale": 1.0}}, "cameractrl"),
        ({"cameractrl": {"scale": -1}}, "cameractrl.scale"),
        ({"cameractrl": {"weight": 1}}, "cameractrl.weight"),
        ({"context": {"length": 24, "overlap": 4}}, "context.length"),
        ({"width": 96, "context": {"length": 16}}, "width"),
    ],
)
def test_bad_cameractrl_specs_name_the_field(over, field):
    with pytest.raises(SpecError) as e:
        parse_spec(spec(small(make_path(still, frames=24)), **over))
    assert field in [f for f, _ in e.value.errors], e.value.errors


def test_more_than_16_frames_need_windows():
    path = small(make_path(still, frames=24))
    with pytest.raises(SpecError, match="context"):
        parse_spec(spec(path))
    parsed = parse_spec(spec(path, context={"length": 16, "overlap": 4}))
    assert parsed.cameractrl.model == "cameractrl" and parsed.cameractrl.scale == 1.0


def test_a_clip_that_fits_in_one_window_takes_any_context_length():
    """No window runs when the clip fits in one: CameraCtrl's pose encoder (16 positions, the original's
    temporal_position_encoding_max_len) then sees the clip's own frames. Longer windows are still refused."""
    assert parse_spec(spec(small(make_path(still, frames=16)), context={"length": 24, "overlap": 4})).context
    assert parse_spec(spec(small(make_path(still, frames=12)), context={"length": 64, "loop": True})).context
    longer = small(make_path(still, frames=20))
    with pytest.raises(SpecError) as e:
        parse_spec(spec(longer, context={"length": 18, "overlap": 4}))
    assert [f for f, _ in e.value.errors] == ["context.length"] and "at most 16" in e.value.errors[0][1]
    assert parse_spec(spec(longer, context={"length": 16, "overlap": 4})).context.length == 16


@pytest.fixture(scope="module")
def client(models, tmp_path_factory):
    from fastapi.testclient import TestClient

    from server.api import Settings, create_app

    settings = Settings(models=ModelConfig.load(models), data_dir=tmp_path_factory.mktemp("cameractrl-jobs"))
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8420") as c:
        yield c


def test_plan_reports_cameractrl_and_its_windows(client):
    path = small(make_path(orbit, frames=12))
    r = client.post("/plan", json=spec(path, context={"length": 8, "overlap": 4}, cameractrl={"scale": 0.8}))
    assert r.status_code == 200, r.text
    plan = r.json()
    c = plan["cameractrl"]
    assert c["model"] == "cameractrl" and c["scale"] == 0.8 and c["authors_guidance"] == 14.0
    assert c["source"].endswith("cameractrl_tiny.ckpt")
    assert len(c["sha256"]) + len(c.get("sha256_pending", [])) == 1  # /plan does not wait for hashes
    assert [w["frames"] for w in c["windows"]] == [list(range(8)), list(range(4, 12))]
    assert c["windows"][1]["first"] == 4 and c["windows"][0]["scene_scale"] == pytest.approx(10.0)
    assert plan["motion_loras"] == [] and any("guidance 14" in n for n in plan["notes"])
    whole = client.post("/plan", json=spec(path, context={"length": 24, "overlap": 4})).json()["cameractrl"]
    assert [w["frames"] for w in whole["windows"]] == [list(range(12))]  # one window: the clip
    v2 = client.post("/plan", json=spec(path, motion_module="v2", context={"length": 8, "overlap": 4})).json()
    assert any("v3" in n for n in v2["notes"])
    unknown = client.post("/plan", json=spec(path, context={"length": 8}, cameractrl={"model": "nope"}))
    assert unknown.status_code == 422 and [(d["field"], d["kind"]) for d in unknown.json()["detail"]] == [
        ("cameractrl.model", "camera_control")
    ]
    assert "cameractrl" in unknown.json()["detail"][0]["known"]


def test_job_with_cameractrl_controlnet_keyframes_and_windows(client):
    """One job through the server: CameraCtrl on the scene's path, a depth ControlNet, an RGB SparseCtrl keyframe
    and context windows in the one guided loop."""
    frames = 6
    path = small(make_path(orbit, frames=frames))
    body = spec(
        path,
        steps=1,
        context={"length": 4, "overlap": 2},
        controlnets=[{"kind": "depth"}],
        sparsectrl={"keyframes": [0], "model": "rgb"},
        guidance=7.5,
    )
    key = png(np.full((SIZE, SIZE, 3), 128, dtype=np.uint8))
    data, files = multipart(body, depth=gradient_frames(frames), keyframe=[key])
    r = client.post("/jobs", data=data, files=files)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    with client.stream("GET", f"/jobs/{job}/events") as events:
        final = [e for e in read_events(events) if e[1] in ("done", "error", "cancelled")]
    assert final and final[-1][1] == "done", final
    manifest = client.get(f"/jobs/{job}/manifest").json()
    assert manifest["plan"]["cameractrl"]["windows"][1]["frames"] == [2, 3, 4, 5]
    assert "camera_control:cameractrl" in manifest["loaded_now"]
    assert len(manifest["frames"]) == frames


def test_the_add_on_builds_a_cameractrl_spec_before_and_after_capture():
    """The Camera Motion panel's "Exact camera" choice: the add-on's spec is checked before capture as it will be
    with the path, and the preflight plan (no path yet) drops the CameraCtrl fields."""
    from backend.job_spec import build_spec, with_guides

    snap = {
        "prompt": "a marionette",
        "negative_prompt": "",
        "seed": 1,
        "steps": 2,
        "guidance": 14.0,
        "scheduler": "ddim",
        "base": "sd15",
        "clip_skip": 2,
        "motion_module": "v3",
        "camera_motion": "cameractrl",
        "keyframe_weight": 1.0,
        "context": None,
        "prompt_keys": [],
        "frame_start": 1,
        "frame_end": 4,
        "fps": 8,
        "width": SIZE,
        "height": SIZE,
        "loras": [],
        "keyframes": [],
        "motion_loras": {},
        "guides": {},
    }
    built = build_spec(snap)
    assert built.camera is None and built.cameractrl.model == "cameractrl"
    sent = with_guides(built, small(make_path(orbit, frames=4)), {})
    assert sent.camera_motion == "cameractrl" and len(sent.camera["frames"]) == 4 and sent.clip_skip == 2
    preflight = parse_spec({**built.to_dict(), "camera_motion": "manual", "camera": None, "cameractrl": None})
    assert preflight.cameractrl is None
    with pytest.raises(SpecError, match="width"):
        build_spec({**snap, "width": 96})
    with pytest.raises(SpecError, match="context"):
        build_spec({**snap, "frame_end": 24})
