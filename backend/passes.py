"""Depth and normal guides from Cycles' Depth (Z) and Normal passes, encoded for the SD1.5 ControlNets.

How the passes are read: each frame is rendered with `bpy.ops.render.render(write_still=True)` into a temporary
multilayer OpenEXR (32-bit float, no compression) and that file is parsed here with numpy. Render output settings
are the same in Blender 4.2 to 5.x except that 5.0 adds `image_settings.media_type` and writes multi-part EXR unless
`use_exr_interleave` asks for the single-part layout 4.x writes and `read_exr` parses. So this path needs no
compositor: it does not depend on the node-tree and File Output changes of 5.0, and leaves the user's compositor
untouched.
`Image.pixels` of a loaded multilayer EXR only shows one pass, and the Render Result has no pixels headless.

Encodings (docs/CONVENTIONS.md):
- depth PNG: inverse depth, one normalisation for the whole clip. The nearest surface of the clip is white; the
  smallest inverse depth of the clip is black, counting background as 1/inf = 0 like the sky in the MiDaS maps the
  ControlNet was trained on. So with background in view a pixel is near/Z, and in a closed set it is
  (1/Z - 1/far) / (1/near - 1/far). Background is black.
- normal PNG: camera-space normals, BAE encoding ((-x, y, z) + 1) / 2 in Blender camera axes, background
  (0.5, 0.5, 1.0); the numbers are written as they are (no view transform, no gamma).
- raw depth: float32 planar camera Z in scene units as .npy, background inf.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import bpy
import numpy as np

from . import camera as camera_math
from .png import write_png
from .scene_state import preserved

# Cycles writes a huge Z (1e10) where a ray hits nothing.
_BACKGROUND_Z = 1e9


class CaptureCancelled(Exception):
    """should_cancel() asked to stop; the scene's settings are already restored when this propagates."""


def render_guides(scene, frames, out_dir, on_frame=None, should_cancel=None) -> dict:
    """Render depth and normal guides for `frames` into `out_dir`, numbered by position from 1.

    on_frame(done, total) is called after each frame; should_cancel() is asked before each frame and True raises
    CaptureCancelled (files of frames already done stay). Returns the written paths, the median Z of each frame
    (None where nothing is in view) and the clip's near and far Z (None if nothing is in view at all).
    """
    frames, result = list(frames), {}
    steps = iter_guides(scene, frames, out_dir, result)
    try:
        for frame in frames:
            if should_cancel is not None and should_cancel():
                raise CaptureCancelled(f"capture cancelled before frame {frame}")
            done, total, _ = next(steps)
            if on_frame is not None:
                on_frame(done, total)
        for _ in steps:  # the clip-wide depth encoding after the last frame
            pass
    finally:
        steps.close()
    return result


def iter_guides(scene, frames, out_dir, result: dict):
    """The same as `render_guides`, one frame per step: yields (done, total, frame) after each frame's render, then
    once per depth PNG encoded with the clip's normalisation (done == total), and fills `result` at the end.
    The render settings stay changed between steps and are restored when the generator
    ends, fails or is closed (`close()` is how a capture driven by a timer is cancelled)."""
    frames, out = list(frames), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.update({"depth": [], "normal": [], "depth_raw": [], "median_depth": []})
    layer = _view_layer(scene)
    depths = []
    with preserved(scene), tempfile.TemporaryDirectory(prefix="marionette-") as tmp:
        exr_path = Path(tmp) / "passes.exr"
        _configure(scene, layer, exr_path)
        for index, frame in enumerate(frames):
            scene.frame_set(frame)
            rotation = camera_math.active_camera(scene).matrix_world.copy()
            channels = _render(scene, layer, exr_path)
            depth = channels[f"{layer.name}.Depth.Z"]
            depth[~(depth < _BACKGROUND_Z)] = np.inf
            normal = np.stack([channels[f"{layer.name}.Normal.{axis}"] for axis in "XYZ"], axis=-1)
            name = f"{index + 1:04d}"
            write_png(out / f"normal_{name}.png", encode_normal(normal, np.isinf(depth), rotation))
            np.save(out / f"depth_raw_{name}.npy", depth)
            result["normal"].append(str(out / f"normal_{name}.png"))
            result["depth_raw"].append(str(out / f"depth_raw_{name}.npy"))
            visible = depth[np.isfinite(depth)]
            result["median_depth"].append(float(np.median(visible)) if visible.size else None)
            depths.append(depth)
            yield index + 1, len(frames), frame
    near, far, black = clip_range(depths)
    for index, depth in enumerate(depths):
        path = out / f"depth_{index + 1:04d}.png"
        write_png(path, encode_depth(depth, near, black))
        result["depth"].append(str(path))
        if index + 1 < len(depths):  # one encoding per step too: a long clip's encodings add up
            yield len(frames), len(frames), frames[index]
    result.update(near=near, far=far)


def _view_layer(scene):
    """The view layer the artist is looking at, else the first one that renders."""
    if scene == bpy.context.scene and bpy.context.view_layer is not None:
        return bpy.context.view_layer
    return next((layer for layer in scene.view_layers if layer.use), scene.view_layers[0])


def _configure(scene, layer, exr_path):
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    # The one sample per pixel lands on the pixel centre, so edges carry one surface's Z, never a blend.
    scene.cycles.filter_width = 0.01
    scene.cycles.max_bounces = 0  # depth and normal come from the camera ray's first hit: bounces only cost time
    layer.samples = 0  # 0: no per-layer sample override
    layer.use_pass_z = True
    layer.use_pass_normal = True
    render.use_compositing = False
    render.use_sequencer = False
    render.use_motion_blur = False
    render.use_border = False
    render.use_multiview = False
    settings = render.image_settings
    if "media_type" in settings.bl_rna.properties:  # Blender 5.0+
        settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.color_depth = "32"
    settings.exr_codec = "NONE"
    if "use_exr_interleave" in settings.bl_rna.properties:  # 5.0+ writes one part per pass unless told otherwise
        settings.use_exr_interleave = True
    render.use_file_extension = True
    render.filepath = str(exr_path)


def _render(scene, layer, exr_path) -> dict[str, np.ndarray]:
    exr_path.unlink(missing_ok=True)
    state = bpy.ops.render.render(write_still=True, layer=layer.name, scene=scene.name)
    if "FINISHED" not in state or not exr_path.exists():
        raise RuntimeError(f"Cycles did not render frame {scene.frame_current} of {scene.name!r} ({state})")
    return read_exr(exr_path)


def read_exr(path) -> dict[str, np.ndarray]:
    """The channels of a single-part scanline OpenEXR without compression, as float32 H×W arrays, top row first."""
    data = Path(path).read_bytes()
    magic, version = struct.unpack_from("<ii", data, 0)
    if magic != 20000630 or version & 0x1A00:  # tiled, deep or multi-part files are not written by our renders
        raise ValueError(f"{path}: not a single-part scanline OpenEXR file")
    pos, header = 8, {}
    while data[pos]:
        name_end = data.index(b"\0", pos)
        type_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        header[data[pos:name_end].decode()] = data[type_end + 5 : type_end + 5 + size]
        pos = type_end + 5 + size
    pos += 1
    if header["compression"][0] != 0:
        raise ValueError(f"{path}: EXR compression {header['compression'][0]} is not supported, only NONE")
    channels, chlist = [], header["channels"]
    while chlist[0]:
        end = chlist.index(b"\0")
        channels.append((chlist[:end].decode(), {0: "<u4", 1: "<f2", 2: "<f4"}[chlist[end + 1]]))
        chlist = chlist[end + 17 :]  # name, pixel type, pLinear + reserved, x and y sampling
    xmin, ymin, xmax, ymax = struct.unpack("<4i", header["dataWindow"])
    width, height = xmax - xmin + 1, ymax - ymin + 1
    out = {name: np.empty((height, width), np.float32) for name, _ in channels}
    offsets = np.frombuffer(data, "<u8", height, pos)
    line = 8 + width * sum(np.dtype(dtype).itemsize for _, dtype in channels)  # y, byte count, then the channels
    if np.array_equal(offsets, offsets[0] + line * np.arange(height, dtype=np.uint64)):
        # The lines lie back to back (as Blender writes them): each channel is one strided view of the file.
        first = int(offsets[0])
        rows = np.ndarray((height,), "<i4", data, first, (line,)) - ymin
        at = first + 8
        for name, dtype in channels:
            out[name][rows] = np.ndarray((height, width), dtype, data, at, (line, np.dtype(dtype).itemsize))
            at += width * np.dtype(dtype).itemsize
        return out
    for offset in offsets:
        y, at = struct.unpack_from("<i", data, int(offset))[0], int(offset) + 8
        for name, dtype in channels:
            out[name][y - ymin] = np.frombuffer(data, dtype, width, at)
            at += width * np.dtype(dtype).itemsize
    return out


def clip_range(depths) -> tuple[float | None, float | None, float]:
    """(near, far, inverse depth shown black) over all frames of a clip; see the module docstring."""
    finite = [d[np.isfinite(d)] for d in depths]
    finite = [f for f in finite if f.size]
    if not finite:
        return None, None, 0.0
    near = float(min(f.min() for f in finite))
    far = float(max(f.max() for f in finite))
    has_background = any(np.isinf(d).any() for d in depths)
    return near, far, 0.0 if has_background else 1.0 / far


def encode_depth(depth, near, black) -> np.ndarray:
    """H×W×3 uint8 grey: 1/Z mapped linearly so 1/near is 255 and `black` is 0; background 0."""
    if near is None:
        return np.zeros((*depth.shape, 3), np.uint8)
    span = 1.0 / near - black
    with np.errstate(divide="ignore"):
        value = np.divide(1.0, depth, dtype=np.float64)
    if span > 0:
        value -= black
        value /= span
    else:
        value[:] = 1.0
    value[np.isinf(depth)] = 0.0
    return np.repeat(_to_uint8(value)[..., None], 3, axis=-1)


def encode_normal(normal_world, background, camera_matrix_world) -> np.ndarray:
    """H×W×3 uint8 BAE normals: n_cam = R_cam^T n_world, rgb = ((-x, y, z) + 1) / 2, background (0.5, 0.5, 1)."""
    rotation = np.array(camera_matrix_world.to_3x3().normalized(), np.float64)
    n = normal_world.astype(np.float64) @ rotation  # row-vector form of R^T n
    # One contiguous plane per axis (masked and in-place steps are several times faster than on H×W×3); the
    # length adds up the squares in np.linalg.norm's order, so every value is the same to the last bit.
    x, y, z = (np.ascontiguousarray(n[..., axis]) for axis in range(3))
    length = x * x
    length += y * y
    length += z * z
    np.sqrt(length, out=length)
    seen = length > 0
    out = np.empty((*length.shape, 3), np.uint8)
    for axis, (plane, sign, behind) in enumerate(((x, -1.0, 0.0), (y, 1.0, 0.0), (z, 1.0, 1.0))):
        np.divide(plane, length, out=plane, where=seen)
        np.copyto(plane, 0.0, where=~seen)
        np.copyto(plane, behind, where=background)
        plane *= sign
        plane += 1.0
        plane /= 2.0
        out[..., axis] = _to_uint8(plane)
    return out


def _to_uint8(value) -> np.ndarray:
    """floor(value * 255 + 0.5) clipped to 0..255; `value` (float64) is overwritten."""
    value *= 255.0
    value += 0.5
    np.floor(value, out=value)
    np.clip(value, 0, 255, out=value)
    return value.astype(np.uint8)
