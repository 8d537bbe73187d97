"""Where the character touches the ground, from the rig, projected into each frame."""

from __future__ import annotations

import bpy
from mathutils import Vector

from ..backend import camera


def ground_contact(armature) -> Vector:
    """World point where the character stands: under its root bone(s) (Mixamo's Hips, Rigify's root), at the
    height of the lowest bone end (the soles)."""
    evaluated = armature.evaluated_get(bpy.context.evaluated_depsgraph_get())
    world = evaluated.matrix_world
    bones = evaluated.pose.bones
    if not bones:
        raise ValueError(f"armature {armature.name!r} has no bones")
    roots = [world @ b.head for b in bones if b.parent is None]
    low = min((world @ p).z for b in bones for p in (b.head, b.tail))
    return Vector((sum(p.x for p in roots) / len(roots), sum(p.y for p in roots) / len(roots), low))


def projected_contacts(scene, armature, camera_obj, frames: list[int]) -> list[tuple[float, float]]:
    """Per frame, the ground contact in pixels (x right, y down, origin at the image's top-left corner)."""
    current = scene.frame_current
    out = []
    try:
        for f in frames:
            scene.frame_set(f)
            depsgraph = bpy.context.evaluated_depsgraph_get()
            K = camera.intrinsics(scene, camera_obj)
            x, y, _ = camera.project(K, camera.world_to_camera(camera_obj, depsgraph), ground_contact(armature))
            out.append((x, y))
    finally:
        scene.frame_set(current)
    return out
