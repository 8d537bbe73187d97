"""Nose, eyes and ears of a rig without face bones, placed from the head's own geometry.

The head is what the head bone moves: vertices of the skinned meshes weighted mostly to the head bone or its
children (jaw, eyes), and meshes parented to one of those bones. In the character's frame (up, its facing, its
left, from the rig's structure) the nose is the front-most point near the middle of the face, the eyes a little
above it on either side, as far forward as the face beside the nose, the ears at the sides of the head halfway
back. A bone's length never enters: importers
make it up (a Mixamo head bone comes in from glTF/FBX 13-23 m long).

Without any head geometry the points come from the body's proportions: the head's height from a head-top bone,
else from the neck-to-hips distance.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import rig_structure

MIN_VERTICES = 12
_WEIGHTED = {}  # (mesh, vertex count, groups, coordinates digest) -> indices of the head's vertices


def head_vertices(armature, head_bone) -> np.ndarray:
    """(N, 3) rest positions in armature space of the vertices the head bone (or a bone under it) moves."""
    obj = rig_structure.owner(armature)
    if obj is None:
        return np.zeros((0, 3))
    group = {head_bone} | {b.name for b in armature.bones[head_bone].children_recursive}
    to_armature = obj.matrix_world.inverted()
    found = []
    for mesh_obj in bpy.data.objects:
        if mesh_obj.type != "MESH" or not len(mesh_obj.data.vertices):
            continue
        if any(m.type == "ARMATURE" and m.object == obj for m in mesh_obj.modifiers):
            indices = {g.index for g in mesh_obj.vertex_groups if g.name in group}
            if not indices:
                continue
            coords = _coords(mesh_obj)
            keep = _weighted(mesh_obj, indices, coords)
            if keep:
                found.append(coords[keep] @ _np(to_armature @ mesh_obj.matrix_world))
            continue
        top = mesh_obj
        while top.parent is not None and top.parent != obj:
            top = top.parent
        if top.parent == obj and top.parent_type == "BONE" and top.parent_bone in group:
            bone = armature.bones[top.parent_bone]
            posed = obj.matrix_world @ obj.pose.bones[bone.name].matrix
            found.append(_coords(mesh_obj) @ _np(bone.matrix_local @ posed.inverted() @ mesh_obj.matrix_world))
    return np.concatenate(found) if found else np.zeros((0, 3))


def _weighted(mesh_obj, indices, coords) -> list[int]:
    """Vertices weighted at least half to the groups `indices`; remembered, as the panel asks on every redraw."""
    key = (mesh_obj.data.as_pointer(), len(coords), tuple(sorted(indices)), hash(coords.tobytes()))
    if key not in _WEIGHTED:
        if len(_WEIGHTED) > 64:
            _WEIGHTED.clear()
        _WEIGHTED[key] = [
            v.index for v in mesh_obj.data.vertices if sum(g.weight for g in v.groups if g.group in indices) >= 0.5
        ]
    return _WEIGHTED[key]


def _coords(mesh_obj) -> np.ndarray:
    """Vertex coordinates as homogeneous rows (N, 4)."""
    mesh = mesh_obj.data
    co = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    return np.hstack([co.reshape(-1, 3), np.ones((len(mesh.vertices), 1))])


def _np(matrix) -> np.ndarray:
    """A 4x4 Matrix as the (4, 3) right operand for row vectors."""
    return np.array(matrix).T[:, :3]


def estimate(armature, mapping, head_bone, axes) -> dict:
    """{face point: Vector in the head bone's rest frame} for the face points the map lacks."""
    up, forward, left = axes
    vertices = head_vertices(armature, head_bone)
    if len(vertices) >= MIN_VERTICES:
        points = _from_shape(vertices, up, forward, left)
    else:
        points = _from_proportions(armature, mapping, head_bone, axes)
    to_bone = armature.bones[head_bone].matrix_local.inverted()
    return {p: to_bone @ v for p, v in points.items() if p not in mapping}


def _from_shape(vertices, up, forward, left) -> dict:
    basis = np.array([tuple(up), tuple(forward), tuple(left)])
    u, f, s = (vertices @ basis.T).T
    u0, u1 = np.percentile(u, [1, 99])
    f0, f1 = np.percentile(f, [1, 99])
    s0, s1 = np.percentile(s, [1, 99])
    h, d, w = max(u1 - u0, 1e-9), max(f1 - f0, 1e-9), max(s1 - s0, 1e-9)
    centre = (s0 + s1) / 2

    middle = (np.abs(s - centre) < 0.15 * w) & (u > u0 + 0.2 * h) & (u < u0 + 0.65 * h)
    if middle.any():
        k = np.flatnonzero(middle)[np.argmax(f[middle])]
        nose = (float(u[k]), float(f[k]), centre)
    else:
        nose = (u0 + 0.4 * h, f1, centre)
    eye_u = min(nose[0] + 0.12 * h, u0 + 0.8 * h)
    ear_u = eye_u - 0.06 * h
    band = np.abs(u - ear_u) < 0.15 * h
    points = {"nose": nose}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        eye_s = centre + sign * 0.2 * w
        brow = (u > nose[0]) & (sign * (s - centre) > 0.1 * w)  # the face beside and above the nose
        eye_f = float(f[brow].max()) if brow.any() else nose[1] - 0.1 * d
        points[f"{side}_eye"] = (eye_u, eye_f - 0.02 * d, eye_s)
        outer = band & (sign * (s - centre) > 0)
        narrow = outer & (np.abs(u - ear_u) < 0.06 * h)
        rim = narrow if narrow.sum() >= 3 else outer
        reach = float(np.max(sign * (s[rim] - centre))) if rim.any() else 0.0
        if reach < 0.3 * w:  # a low-poly head: no vertices at the ears' height
            reach = w / 2
        points[f"{side}_ear"] = (ear_u, (f0 + f1) / 2, centre + sign * 0.85 * reach)
    return {p: up * a + forward * b + left * c for p, (a, b, c) in points.items()}


# Fractions of the head's height from the top of the neck: (up, forward, sideways).
PROPORTIONS = {"nose": (0.35, 0.5, 0.0), "eye": (0.5, 0.42, 0.16), "ear": (0.42, 0.0, 0.38)}


def _from_proportions(armature, mapping, head_bone, axes) -> dict:
    up, forward, left = axes
    base = armature.bones[head_bone].head_local
    height = 0.0
    for bone in armature.bones[head_bone].children_recursive:
        if {"top", "end"} & set(rig_structure.words(bone.name)):
            height = max(height, (bone.head_local - base).dot(up))
    if height <= 0 and "neck" in mapping and "left_hip" in mapping and "right_hip" in mapping:
        hips = (
            rig_structure.entry_point(armature, mapping["left_hip"])
            + rig_structure.entry_point(armature, mapping["right_hip"])
        ) / 2
        height = 0.45 * (rig_structure.entry_point(armature, mapping["neck"]) - hips).length
    if height <= 0:
        return {}
    out = {}
    for point in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        a, b, c = PROPORTIONS[point.split("_")[-1]]
        sign = -1.0 if point.startswith("right") else 1.0
        out[point] = base + (up * a + forward * b + left * (sign * c)) * height
    return out
