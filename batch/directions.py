"""The same shot from N yaws around the character: same distance, height and lens, one camera per direction."""

from __future__ import annotations

import math
from contextlib import contextmanager

import bpy
from mathutils import Matrix


def yaw_matrices(camera_world: Matrix, center, count: int) -> list[tuple[float, Matrix]]:
    """(yaw in degrees, camera matrix) for `count` yaws 360/count apart about the vertical axis through `center`;
    yaw 0 is the given camera, angles grow anticlockwise seen from above."""
    out = []
    for k in range(count):
        yaw = 360.0 * k / count
        turn = Matrix.Translation(center) @ Matrix.Rotation(math.radians(yaw), 4, "Z") @ Matrix.Translation(-center)
        out.append((yaw, turn @ camera_world))
    return out


@contextmanager
def direction_cameras(scene, count: int, center, frame: int):
    """Temporary cameras (sharing the scene camera's lens data), posed as the scene camera is at `frame` and
    turned about `center`; yields [(yaw, camera object)] and removes them afterwards. The scene camera stays."""
    original = scene.camera
    current = scene.frame_current
    scene.frame_set(frame)
    world = original.evaluated_get(bpy.context.evaluated_depsgraph_get()).matrix_world.copy()
    scene.frame_set(current)
    made = []
    try:
        for yaw, matrix in yaw_matrices(world, center, count):
            cam = bpy.data.objects.new(f"Marionette yaw {yaw:g}", original.data)
            scene.collection.objects.link(cam)
            cam.matrix_world = matrix
            made.append((yaw, cam))
        yield made
    finally:
        scene.camera = original
        for _, cam in made:
            bpy.data.objects.remove(cam)
