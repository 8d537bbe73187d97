"""The capture's fast paths write exactly what the plain formulas write (issue 20: faster, same guides)."""

from __future__ import annotations

import struct
from pathlib import Path

import bpy  # a missing bpy is a collection error, never a skip
import numpy as np
import pytest
from mathutils import Euler

from backend import passes, scene_state

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0


def exr_line_by_line(path) -> dict[str, np.ndarray]:
    """One scanline block at a time, following the offset table: the reader before issue 20."""
    data = Path(path).read_bytes()
    pos = 8
    header = {}
    while data[pos]:
        name_end = data.index(b"\0", pos)
        type_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        header[data[pos:name_end].decode()] = data[type_end + 5 : type_end + 5 + size]
        pos = type_end + 5 + size
    pos += 1
    channels, chlist = [], header["channels"]
    while chlist[0]:
        end = chlist.index(b"\0")
        channels.append((chlist[:end].decode(), {0: "<u4", 1: "<f2", 2: "<f4"}[chlist[end + 1]]))
        chlist = chlist[end + 17 :]
    xmin, ymin, xmax, ymax = struct.unpack("<4i", header["dataWindow"])
    width, height = xmax - xmin + 1, ymax - ymin + 1
    out = {name: np.empty((height, width), np.float32) for name, _ in channels}
    for offset in np.frombuffer(data, "<u8", height, pos):
        y, at = struct.unpack_from("<i", data, int(offset))[0], int(offset) + 8
        for name, dtype in channels:
            out[name][y - ymin] = np.frombuffer(data, dtype, width, at)
            at += width * np.dtype(dtype).itemsize
    return out


def test_exr_channels_read_whole_equal_a_line_by_line_read(tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 40, 30
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, location=(0.4, 0, 0))
    bpy.ops.object.camera_add(location=(0, -5, 0), rotation=(1.5708, 0, 0))
    scene.camera = bpy.context.object
    exr = tmp_path / "passes.exr"
    with scene_state.preserved(scene):
        layer = passes._view_layer(scene)
        passes._configure(scene, layer, exr)
        channels = passes._render(scene, layer, exr)
    expected = exr_line_by_line(exr)
    assert channels.keys() == expected.keys() and len(channels) >= 4
    for name, values in expected.items():
        assert np.array_equal(channels[name], values, equal_nan=True), name
    depth = channels[f"{layer.name}.Depth.Z"]
    assert (depth < 1e9).any() and (depth >= 1e9).any()  # the sphere and the background both in view


def plain_normal(normal_world, background, camera_matrix_world):
    """The encoding as docs/CONVENTIONS.md states it, written the plain way (the code before issue 20)."""
    rotation = np.array(camera_matrix_world.to_3x3().normalized(), np.float64)
    n = normal_world.astype(np.float64) @ rotation
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    n[background] = (0.0, 0.0, 1.0)
    return np.clip(np.floor((n * (-1.0, 1.0, 1.0) + 1.0) / 2.0 * 255.0 + 0.5), 0, 255).astype(np.uint8)


def plain_depth(depth, near, black):
    inverse = 1.0 / depth.astype(np.float64)
    span = 1.0 / near - black
    value = (inverse - black) / span if span > 0 else np.ones_like(inverse)
    value[np.isinf(depth)] = 0.0
    grey = np.clip(np.floor(value * 255.0 + 0.5), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def test_normal_and_depth_encodings_equal_the_plain_formulas():
    rng = np.random.default_rng(7)
    normal = rng.normal(size=(64, 80, 3)).astype(np.float32)
    normal[:3] = 0.0  # nothing hit and not background (a zero normal)
    normal[3, :5] = np.nan
    background = rng.random((64, 80)) < 0.3
    camera = Euler((1.1, -0.2, 0.7)).to_matrix().to_4x4()
    assert np.array_equal(passes.encode_normal(normal, background, camera), plain_normal(normal, background, camera))

    depth = rng.uniform(0.5, 40.0, (64, 80)).astype(np.float32)
    depth[background] = np.inf
    near, _far, black = passes.clip_range([depth])
    assert np.array_equal(passes.encode_depth(depth, near, black), plain_depth(depth, near, black))
    closed = np.full((8, 8), 3.0, np.float32)  # one distance everywhere: no span, all white
    near, _far, black = passes.clip_range([closed])
    assert np.array_equal(passes.encode_depth(closed, near, black), plain_depth(closed, near, black))
    assert passes.encode_depth(closed, near, black).min() == 255
