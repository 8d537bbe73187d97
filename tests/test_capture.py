"""Guide capture in real bpy: depth and normal encodings, camera math against renders, settings restored."""

from __future__ import annotations

import math

import bpy  # a missing bpy is a collection error, never a skip
import numpy as np
import pytest
from mathutils import Euler, Matrix, Vector  # noqa: E402

from backend import compositing, scene_state  # noqa: E402
from backend.camera import camera_path, intrinsics, project, world_to_camera  # noqa: E402
from backend.keyframes import render_keyframes  # noqa: E402
from backend.passes import CaptureCancelled, render_guides  # noqa: E402
from backend.png import read_png, write_png  # noqa: E402

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0


@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    return scene


def add_camera(scene, location=(0, 0, 0), rotation=(0, 0, 0), name="Cam"):
    obj = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    obj.location, obj.rotation_euler = location, rotation
    scene.collection.objects.link(obj)
    scene.camera = obj
    return obj


def add_mesh(scene, verts, name="Quad"):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([tuple(v) for v in verts], [], [range(len(verts))])
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def cam_to_world(cam):
    return Matrix.LocRotScale(cam.location, cam.rotation_euler, None)


def facing_quad(scene, cam, centre, size, name="Quad"):
    """A square parallel to the image plane, front face toward the camera; `centre` in Blender camera axes."""
    to_world = cam_to_world(cam)
    h = size / 2
    corners = [(-h, -h), (h, -h), (h, h), (-h, h)]  # counter-clockwise seen from the camera: normal toward it
    return add_mesh(scene, [to_world @ Vector((centre[0] + x, centre[1] + y, centre[2])) for x, y in corners], name)


def guides(scene, tmp_path, frames=(1,), **kwargs):
    return render_guides(scene, list(frames), tmp_path / "guides", **kwargs)


# --- depth -----------------------------------------------------------------------------------------------------


def test_depth_nearer_is_brighter_background_black_and_raw_z_is_planar(scene, tmp_path):
    cam = add_camera(scene)
    facing_quad(scene, cam, (-0.6, 0.3, -4), 1.0, "Near")
    facing_quad(scene, cam, (0.8, -0.3, -7), 1.5, "Far")
    out = guides(scene, tmp_path)
    depth = read_png(out["depth"][0])
    assert depth.shape == (48, 64, 3)
    assert (depth[..., 0] == depth[..., 1]).all() and (depth[..., 0] == depth[..., 2]).all()
    K, w2c = intrinsics(scene, cam), world_to_camera(cam)
    near_px = project(K, w2c, cam_to_world(cam) @ Vector((-0.6, 0.3, -4)))
    far_px = project(K, w2c, cam_to_world(cam) @ Vector((0.8, -0.3, -7)))
    near_value = depth[int(near_px[1]), int(near_px[0]), 0]
    far_value = depth[int(far_px[1]), int(far_px[0]), 0]
    assert near_value == 255 and 0 < far_value < near_value
    assert depth[0, 0, 0] == 0 and depth[-1, -1, 0] == 0
    raw = np.load(out["depth_raw"][0])
    assert raw.dtype == np.float32 and np.isinf(raw[0, 0])
    assert raw[int(far_px[1]), int(far_px[0])] == pytest.approx(7.0, abs=1e-3)  # planar Z, not ray length
    assert out["near"] == pytest.approx(4.0, abs=1e-3) and out["far"] == pytest.approx(7.0, abs=1e-3)


def test_depth_without_background_maps_the_farthest_surface_to_black(scene, tmp_path):
    cam = add_camera(scene)
    facing_quad(scene, cam, (0, 0, -6), 20.0, "Backdrop")  # fills the view: no background pixel
    facing_quad(scene, cam, (0.5, 0, -3), 0.8, "Near")
    depth = read_png(guides(scene, tmp_path)["depth"][0])[..., 0]
    K, w2c = intrinsics(scene, cam), world_to_camera(cam)
    x, y, _ = project(K, w2c, (0.5, 0, -3))
    assert depth[int(y), int(x)] == 255 and depth[0, 0] == 0 and depth.min() == 0


def test_depth_is_normalised_over_the_whole_clip(scene, tmp_path):
    cam = add_camera(scene)
    facing_quad(scene, cam, (-0.8, 0, -5), 0.8, "Static")
    moving = facing_quad(scene, cam, (0.8, 0, 0), 0.6, "Moving")
    for frame, z in ((1, -3.0), (2, -5.5), (3, -8.0)):
        moving.location = (0, 0, z)
        moving.keyframe_insert("location", frame=frame)
    out = guides(scene, tmp_path, frames=(1, 2, 3))
    K, w2c = intrinsics(scene, cam), world_to_camera(cam)
    sx, sy, _ = project(K, w2c, (-0.8, 0, -5))
    static = [read_png(path)[int(sy), int(sx), 0] for path in out["depth"]]
    assert static[0] == static[1] == static[2] > 0
    moving_values = []
    for path, z in zip(out["depth"], (-3.0, -5.5, -8.0)):
        mx, my, _ = project(K, w2c, (0.8, 0, z))
        moving_values.append(read_png(path)[int(my), int(mx), 0])
    assert moving_values[0] == 255 > static[0] > moving_values[2] > 0
    assert out["near"] == pytest.approx(3.0, abs=1e-3) and out["far"] == pytest.approx(8.0, abs=1e-3)
    assert len(out["median_depth"]) == 3 and all(isinstance(d, float) for d in out["median_depth"])


# --- normals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rotation", [(math.pi / 2, 0, 0), (1.2, 0.35, 2.1)])
def test_normals_are_camera_space_bae(scene, tmp_path, rotation):
    cam = add_camera(scene, location=(1, -2, 0.5), rotation=rotation)
    facing_quad(scene, cam, (0.7, 0, -4), 1.2, "Facing")
    # A wall left of the camera whose normal is the camera's +x: it faces image-right.
    to_world = cam_to_world(cam)
    wall = [(-1, -1.5, -2), (-1, -1.5, -9), (-1, 1.5, -9), (-1, 1.5, -2)]
    add_mesh(scene, [to_world @ Vector(v) for v in wall], "Wall")
    out = guides(scene, tmp_path)
    normal = read_png(out["normal"][0]).astype(int)
    K, w2c = intrinsics(scene, cam), world_to_camera(cam)
    fx, fy, _ = project(K, w2c, to_world @ Vector((0.7, 0, -4)))
    wx, wy, _ = project(K, w2c, to_world @ Vector((-1, 0, -5)))
    assert np.abs(normal[int(fy), int(fx)] - (128, 128, 255)).max() <= 3
    assert np.abs(normal[int(wy), int(wx)] - (0, 128, 128)).max() <= 3
    assert (normal[0, -1] == (128, 128, 255)).all()  # background


# --- camera math against the render ----------------------------------------------------------------------------

PROJECTION_CASES = {
    "non-square, shifted, rotated": dict(size=(96, 64), shift=(0.1, -0.05), rotation=(1.3, 0.2, 0.4)),
    "sensor fit VERTICAL": dict(size=(64, 96), fit="VERTICAL", sensor_height=24.0, shift=(-0.08, 0.1)),
    "pixel aspect 1:2 (AUTO goes vertical)": dict(size=(96, 64), aspect=(1, 2), shift=(0.05, 0.05)),
    "pixel aspect 2:1, 50 percent": dict(
        size=(160, 128), percent=50, aspect=(2, 1), fit="HORIZONTAL", shift=(0.0, 0.1)
    ),
}


def between(centres, lo, hi, hair=0.02):
    return (centres > lo) & (centres < hi), (abs(centres - lo) < hair) | (abs(centres - hi) < hair)


@pytest.mark.parametrize("case", PROJECTION_CASES, ids=list(PROJECTION_CASES))
def test_projection_lands_where_the_point_renders(scene, tmp_path, case):
    spec = PROJECTION_CASES[case]
    render = scene.render
    render.resolution_x, render.resolution_y = spec["size"]
    render.resolution_percentage = spec.get("percent", 100)
    render.pixel_aspect_x, render.pixel_aspect_y = spec.get("aspect", (1, 1))
    cam = add_camera(scene, location=(0.5, -5, 1), rotation=spec.get("rotation", (math.pi / 2, 0, 0)))
    cam.data.sensor_fit = spec.get("fit", "AUTO")
    cam.data.sensor_height = spec.get("sensor_height", cam.data.sensor_height)
    cam.data.shift_x, cam.data.shift_y = spec["shift"]
    centre_cam = Vector((0.3, 0.35, -5.0))
    facing_quad(scene, cam, centre_cam, 0.45, "Marker")
    out = guides(scene, tmp_path)
    depth = read_png(out["depth"][0])[..., 0]
    width, height = (
        render.resolution_x * render.resolution_percentage // 100,
        render.resolution_y * render.resolution_percentage // 100,
    )
    assert depth.shape == (height, width)
    rows, cols = np.nonzero(depth)
    assert 12 <= rows.size < depth.size / 4, "the marker should cover a few pixels"
    K, w2c = intrinsics(scene, cam), world_to_camera(cam)
    x, y, z = project(K, w2c, cam_to_world(cam) @ centre_cam)
    assert 0 < x < width and 0 < y < height
    # Pixel (col, row) has its centre at (col + 0.5, row + 0.5).
    assert abs(cols.mean() + 0.5 - x) < 1.0 and abs(rows.mean() + 0.5 - y) < 1.0
    # Stricter: the marker covers exactly the pixels whose centres fall inside its projected corners (Cycles
    # samples pixel centres here), except centres within a hair of an edge.
    corners = [
        project(K, w2c, cam_to_world(cam) @ (centre_cam + Vector((dx, dy, 0))))
        for dx in (-0.225, 0.225)
        for dy in (-0.225, 0.225)
    ]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    inside_x, edge_x = between(np.arange(width) + 0.5, min(xs), max(xs))
    inside_y, edge_y = between(np.arange(height) + 0.5, min(ys), max(ys))
    expected = inside_y[:, None] & inside_x[None, :]
    unsure = edge_y[:, None] | edge_x[None, :]
    assert not ((depth > 0) != expected)[~unsure].any()
    raw = np.load(out["depth_raw"][0])
    assert np.allclose(raw[rows, cols], z, atol=1e-3)


def test_camera_path_samples_animated_lens_and_transform(scene):
    cam = add_camera(scene, location=(0, -6, 0), rotation=(math.pi / 2, 0, 0))
    cam.scale = (2, 2, 2)  # scale must not leak into world_to_camera
    keys = {1: ((0, -6, 0), (math.pi / 2, 0, 0), 30.0, 0.0), 3: ((2, -4, 1), (1.4, 0, 0.3), 60.0, 0.1)}
    for frame, (location, rotation, lens, shift) in keys.items():
        cam.location, cam.rotation_euler, cam.data.lens, cam.data.shift_x = location, rotation, lens, shift
        cam.keyframe_insert("location", frame=frame)
        cam.keyframe_insert("rotation_euler", frame=frame)
        cam.data.keyframe_insert("lens", frame=frame)
        cam.data.keyframe_insert("shift_x", frame=frame)
    scene.render.fps, scene.render.fps_base = 24, 1.001
    scene.frame_set(7)
    path = camera_path(scene, [1, 2, 3], [4.0, 5.0, 6.0])
    assert scene.frame_current == 7
    assert path["fps"] == pytest.approx(24 / 1.001) and (path["width"], path["height"]) == (64, 48)
    frames = path["frames"]
    assert [f["frame"] for f in frames] == [1, 2, 3] and [f["depth"] for f in frames] == [4.0, 5.0, 6.0]
    fx = [f["K"][0][0] for f in frames]
    assert fx[0] == pytest.approx(30 / 36 * 64) and fx[2] == pytest.approx(60 / 36 * 64) and fx[0] < fx[1] < fx[2]
    assert frames[2]["K"][0][2] == pytest.approx(32 - 0.1 * 64)
    for frame, (location, rotation, _, _) in keys.items():
        w2c = np.array(frames[frame - 1]["world_to_camera"])
        assert np.allclose(w2c @ (*location, 1), (0, 0, 0, 1), atol=1e-5)  # the camera centre
        assert np.allclose(w2c[:3, :3] @ w2c[:3, :3].T, np.eye(3), atol=1e-5)
        ahead = Matrix.LocRotScale(Vector(location), Euler(rotation), None) @ Vector((0, 0.5, -3))  # above centre
        K = frames[frame - 1]["K"]
        x, y, z = project(K, w2c.tolist(), ahead)
        assert z == pytest.approx(3) and x == pytest.approx(K[0][2]) and y < K[1][2]  # OpenCV: y down
    assert not np.allclose(frames[0]["world_to_camera"], frames[1]["world_to_camera"])


# --- scene state -----------------------------------------------------------------------------------------------


def user_settings(scene):
    render, cycles, image, view = scene.render, scene.cycles, scene.render.image_settings, scene.view_settings
    return {
        "engine": render.engine,
        "samples": cycles.samples,
        "denoise": cycles.use_denoising,
        "filter_width": round(cycles.filter_width, 5),
        "device": cycles.device,
        "layers": [(vl.name, vl.use, vl.samples, vl.use_pass_z, vl.use_pass_normal) for vl in scene.view_layers],
        "use_compositing": render.use_compositing,
        "use_sequencer": render.use_sequencer,
        "use_nodes": scene.use_nodes,
        "nodes": sorted(n.name for n in compositing.compositor_tree(scene, create=False).nodes),
        "filepath": render.filepath,
        "format": (image.file_format, image.color_mode, image.color_depth, image.quality, image.exr_codec),
        "size": (render.resolution_x, render.resolution_y, render.resolution_percentage),
        "film_transparent": render.film_transparent,
        "motion_blur": render.use_motion_blur,
        "border": render.use_border,
        "extension": render.use_file_extension,
        "view": (view.view_transform, view.look, round(view.exposure, 5), round(view.gamma, 5)),
        "frame": (scene.frame_current, round(scene.frame_subframe, 5)),
        "camera": scene.camera.name,
    }


@pytest.fixture
def dressed(scene):
    """A scene whose render settings are all away from what a guide capture uses."""
    add_camera(scene, location=(0, -6, 0), rotation=(math.pi / 2, 0, 0), name="Other")
    cam = add_camera(scene, location=(0, -6, 0), rotation=(math.pi / 2, 0, 0))
    facing_quad(scene, cam, (0, 0, -5), 1.0)
    scene.view_layers.new("Second")
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    scene.cycles.samples, scene.cycles.use_denoising, scene.cycles.filter_width = 7, True, 2.0
    for layer in scene.view_layers:
        layer.samples = 3
    compositing.compositor_tree(scene)
    render.filepath = "//renders/shot_"
    render.image_settings.file_format, render.image_settings.quality = "JPEG", 77
    render.film_transparent = render.use_motion_blur = render.use_border = True
    render.use_file_extension = False
    scene.view_settings.view_transform, scene.view_settings.exposure, scene.view_settings.gamma = "Standard", 0.5, 1.2
    scene.frame_set(2, subframe=0.25)
    return scene


def test_capture_leaves_every_setting_as_it_was(dressed, tmp_path):
    before, raw_before = user_settings(dressed), scene_state.snapshot(dressed)
    guides(dressed, tmp_path, frames=(1, 3))
    assert user_settings(dressed) == before
    raw_after = scene_state.snapshot(dressed)
    assert [v for _, v in raw_after[0]] == [v for _, v in raw_before[0]] and raw_after[1] == raw_before[1]


def test_cancelled_capture_also_restores_settings(dressed, tmp_path):
    before = user_settings(dressed)
    asked, progress = [], []

    def should_cancel():
        asked.append(True)
        return len(asked) > 1

    with pytest.raises(CaptureCancelled):
        guides(
            dressed,
            tmp_path,
            frames=(1, 2, 3),
            should_cancel=should_cancel,
            on_frame=lambda done, total: progress.append((done, total)),
        )
    assert progress == [(1, 3)]
    assert user_settings(dressed) == before


# --- keyframes and PNG -----------------------------------------------------------------------------------------


def test_keyframes_use_the_scenes_engine_at_render_size(scene, tmp_path):
    cam = add_camera(scene, location=(0, -6, 0), rotation=(math.pi / 2, 0, 0))
    bpy.ops.mesh.primitive_cube_add(size=1.5)
    cube = bpy.context.active_object
    for frame, x in ((1, -1.5), (5, 1.5)):
        cube.location.x = x
        cube.keyframe_insert("location", frame=frame)
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_percentage = 50
    render.image_settings.file_format = "JPEG"
    render.filepath = "//elsewhere/"
    scene.frame_set(3)
    paths = render_keyframes(scene, [1, 5], tmp_path / "keys")
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["keyframe_0001.png", "keyframe_0002.png"]
    images = [read_png(p) for p in paths]
    assert all(image.shape == (24, 32, 3) for image in images)
    assert images[0].std() > 1 and not np.array_equal(images[0], images[1])  # the cube moved between keys
    assert (render.engine, render.image_settings.file_format, render.filepath, scene.frame_current) == (
        "BLENDER_WORKBENCH",
        "JPEG",
        "//elsewhere/",
        3,
    )
    assert scene.camera == cam
    # Our decoder agrees with Blender's on a PNG Blender wrote (filters, row order).
    loaded = bpy.data.images.load(paths[0])
    try:
        pixels = np.array(loaded.pixels[:]).reshape(24, 32, loaded.channels)[::-1, :, :3]
    finally:
        bpy.data.images.remove(loaded)
    assert np.abs(np.round(pixels * 255) - images[0]).max() <= 1


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (6, 3, 2), (4, 9, 3), (8, 2, 4)])
def test_png_round_trip(tmp_path, shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    write_png(tmp_path / "x.png", pixels)
    assert np.array_equal(read_png(tmp_path / "x.png"), pixels.reshape(shape[0], shape[1], -1))
