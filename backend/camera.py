"""Camera intrinsics, OpenCV extrinsics and the per-frame camera path sent to the server (no rendering).

Pixel convention of every K here: x to the right, y down, origin at the top-left CORNER of the image, so the centre
of pixel (column i, row j) is at (i + 0.5, j + 0.5) and the image spans [0, W] × [0, H]. That is why an unshifted
lens has its principal point at (W/2, H/2). Formulas: docs/CONVENTIONS.md, "Camera".
"""

from __future__ import annotations

import bpy
from mathutils import Matrix, Vector

# Blender camera axes (x right, y up, looking down -z) to OpenCV axes (x right, y down, looking down +z).
_BLENDER_TO_OPENCV = Matrix.Diagonal((1.0, -1.0, -1.0, 1.0))


def render_size(scene) -> tuple[int, int]:
    """Output width and height in pixels after resolution_percentage (Blender rounds down)."""
    render = scene.render
    return (
        render.resolution_x * render.resolution_percentage // 100,
        render.resolution_y * render.resolution_percentage // 100,
    )


def _depsgraph(scene=None):
    if scene is None or scene == bpy.context.scene:
        return bpy.context.evaluated_depsgraph_get()
    return scene.view_layers[0].depsgraph


def _evaluated(obj, depsgraph=None):
    return obj if obj.is_evaluated else obj.evaluated_get(depsgraph or _depsgraph())


def active_camera(scene):
    """The scene's camera evaluated at the current frame (animation, drivers, constraints applied)."""
    if scene.camera is None:
        raise ValueError(f"scene {scene.name!r} has no active camera at frame {scene.frame_current}")
    return _evaluated(scene.camera, _depsgraph(scene))


def intrinsics(scene, camera_obj) -> list[list[float]]:
    """3×3 K in pixels for the render size of `scene`, from the camera's lens, sensor, sensor fit and shift."""
    cam = camera_obj.data
    if cam.type != "PERSP":
        raise ValueError(f"camera {camera_obj.name!r} is {cam.type}; guides need a perspective camera")
    width, height = render_size(scene)
    aspect_x, aspect_y = scene.render.pixel_aspect_x, scene.render.pixel_aspect_y
    ycor = aspect_y / aspect_x
    fit = cam.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if aspect_x * width >= aspect_y * height else "VERTICAL"
    view = width if fit == "HORIZONTAL" else ycor * height
    # AUTO uses sensor_width for whichever side is longer; only an explicit VERTICAL fit uses sensor_height.
    sensor = cam.sensor_height if cam.sensor_fit == "VERTICAL" else cam.sensor_width
    fx = cam.lens / sensor * view
    return [
        [fx, 0.0, width / 2 - cam.shift_x * view],
        [0.0, fx / ycor, height / 2 + cam.shift_y * view / ycor],
        [0.0, 0.0, 1.0],
    ]


def world_to_camera(camera_obj, depsgraph=None) -> list[list[float]]:
    """4×4 world-to-camera matrix in OpenCV axes, from the evaluated camera at the current frame (scale removed)."""
    matrix = _evaluated(camera_obj, depsgraph).matrix_world.normalized().inverted()
    return [list(row) for row in _BLENDER_TO_OPENCV @ matrix]


def camera_path(scene, frames, depths) -> dict:
    """The protocol's camera path: fps, size and, per frame, K, world_to_camera and the median depth seen.

    `depths[i]` belongs to `frames[i]` (render_guides' median_depth). Each frame is evaluated with frame_set, so
    animated lens, shift, transform and marker-bound camera switches are sampled; the current frame is restored.
    """
    frames, depths = list(frames), list(depths)
    if len(frames) != len(depths):
        raise ValueError(f"{len(frames)} frames but {len(depths)} depths")
    fps = scene.render.fps / scene.render.fps_base
    width, height = render_size(scene)
    path = {"fps": int(fps) if fps.is_integer() else fps, "width": width, "height": height, "frames": []}
    frame, subframe = scene.frame_current, scene.frame_subframe
    try:
        for number, depth in zip(frames, depths):
            scene.frame_set(number)
            camera = active_camera(scene)
            path["frames"].append(
                {
                    "frame": number,
                    "K": intrinsics(scene, camera),
                    "world_to_camera": world_to_camera(camera),
                    "depth": depth,
                }
            )
    finally:
        scene.frame_set(frame, subframe=subframe)
    return path


def project(K, world_to_camera, point_world) -> tuple[float, float, float]:
    """Pixel (x, y) of a world point in the convention above, and its camera-space depth z (> 0 in front)."""
    x, y, z = (Matrix(world_to_camera) @ Vector((*point_world, 1.0)))[:3]
    return (K[0][0] * x + K[0][1] * y) / z + K[0][2], K[1][1] * y / z + K[1][2], z
