"""OpenPose keypoints from rigged characters, per frame, in pixels of the job's size.

Per frame the EVALUATED pose is read (the depsgraph's copy of each armature: constraints, drivers, NLA and
actions applied), each mapped bone point is taken to world space and projected with the K and world_to_camera of
the camera path, so keypoints and the other guides share one camera. Output per frame, OpenPose JSON style:
`{"people": [{"pose_keypoints_2d": [x, y, c] * 18, "hand_left_keypoints_2d": [x, y, c] * 21, ...}]}`.

A point gets confidence 0 (omitted, not drawn) when it is behind the camera, outside the image, or hidden.
Hidden: the raw depth pass (planar camera Z) at the point's pixel is nearer than the point; then a ray cast from
the camera to the point says what is in front. The character's own meshes (children of the armature, or meshes
with an Armature modifier on it) hide nothing, unless `own_body_hides`: then they hide a point when their surface
is more than `thickness` in front of it (joints sit inside the body, so the skin just over them must not count).
Only what the final render shows hides anything (render_visibility.py): an object hidden in renders, in a
collection excluded from the view layer or disabled in renders, holdout or indirect-only hides nothing.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix, Vector

from . import camera as camera_math
from . import render_visibility, rig_tables, rigs

# Another object hides a point when its surface is more than this fraction of the point's depth in front of it
# (depth precision, and a keypoint resting on a surface).
SURFACE_TOLERANCE = 0.01
_MAX_LAYERS = 64  # surfaces one ray may pass through


def candidates(scene, view_layer=None) -> list:
    """Armature objects of the view layer that render and are not switched off in the panel."""
    layer = view_layer or _view_layer(scene)
    collections = render_visibility.rendered_collections(layer)
    found = []
    for obj in layer.objects:
        if obj.type != "ARMATURE" or not render_visibility.in_render(obj, collections):
            continue
        settings = getattr(obj.data, "marionette_pose", None)
        if settings is not None and not settings.include:
            continue
        found.append(obj)
    return sorted(found, key=lambda o: o.name)


def _view_layer(scene):
    """The view layer the artist is looking at (the one the guides render), else the scene's first."""
    if scene == bpy.context.scene and bpy.context.view_layer is not None:
        return bpy.context.view_layer
    return next((layer for layer in scene.view_layers if layer.use), scene.view_layers[0])


def characters(scene, view_layer=None) -> list:
    """The candidates that are people (or mapped by hand) with a usable bone map (the neck and enough points)."""
    return [obj for obj in candidates(scene, view_layer) if rigs.usable(rigs.body_map(obj.data))]


def own_meshes(armature_obj, scene) -> set[str]:
    """Names of the meshes that belong to the character: children (any depth) and Armature-modifier users."""
    names = {child.name for child in armature_obj.children_recursive}
    for obj in scene.objects:
        if any(m.type == "ARMATURE" and m.object == armature_obj for m in getattr(obj, "modifiers", ())):
            names.add(obj.name)
    return names


def capture(
    scene, armature_names, camera_path, depth_raw=None, hands=True, own_body_hides=False, thickness=0.15
) -> list[dict]:
    """One OpenPose frame per camera-path frame. `depth_raw[i]`: path to frame i's raw Z (.npy, inf = background);
    without it every point in view is checked with a ray cast.

    Leaves the scene at the frame it was on.
    """
    objects = [scene.objects[name] for name in armature_names]
    maps = []
    for obj in objects:
        found = rigs.assess(obj.data)
        maps.append(
            (
                obj,
                rigs.body_map(obj.data, found),
                rigs.hand_maps(obj.data, found) if hands else {},
                own_meshes(obj, scene),
            )
        )
    collections = render_visibility.rendered_collections(_view_layer(scene))
    with render_visibility.revealed(scene, _view_layer(scene)):
        return _frames(scene, camera_path, depth_raw, maps, collections, own_body_hides, thickness)


def _frames(scene, camera_path, depth_raw, maps, collections, own_body_hides, thickness) -> list[dict]:
    width, height = camera_path["width"], camera_path["height"]
    frames_out = []
    frame, subframe = scene.frame_current, scene.frame_subframe
    try:
        for index, item in enumerate(camera_path["frames"]):
            scene.frame_set(item["frame"])
            depsgraph = camera_math._depsgraph(scene)
            depth = np.load(depth_raw[index]) if depth_raw else None
            view = _View(scene, depsgraph, item["K"], item["world_to_camera"], width, height, depth, collections)
            people = []
            for obj, body, hand_maps, own in maps:
                evaluated = obj.evaluated_get(depsgraph)
                person = {
                    "pose_keypoints_2d": _points(
                        view, evaluated, body, rigs.BODY_POINTS, own, own_body_hides, thickness
                    )
                }
                for side, hand in sorted(hand_maps.items()):
                    person[f"hand_{side}_keypoints_2d"] = _points(
                        view, evaluated, hand, rig_tables.HAND_POINTS, own, own_body_hides, thickness
                    )
                people.append(person)
            frames_out.append({"people": people})
    finally:
        scene.frame_set(frame, subframe=subframe)
    return frames_out


def _points(view, evaluated, mapping, order, own, own_body_hides, thickness) -> list[float]:
    out = []
    to_world = evaluated.matrix_world
    for point in order:
        entry = mapping.get(point)
        if entry is None or entry[0] not in evaluated.pose.bones:
            out += [0.0, 0.0, 0.0]
            continue
        world = to_world @ rigs.pose_point(evaluated.pose.bones, entry)
        out += view.keypoint(world, own, own_body_hides, thickness)
    return out


class _View:
    """One frame's camera, image and depth: projects world points and tells whether they are seen."""

    def __init__(self, scene, depsgraph, K, world_to_camera, width, height, depth, collections):
        self.scene, self.depsgraph, self.collections = scene, depsgraph, collections
        self.K, self.w2c = K, world_to_camera
        self.width, self.height, self.depth = width, height, depth
        rotation = Matrix(world_to_camera).to_3x3()
        self.origin = -(rotation.transposed() @ Vector([row[3] for row in world_to_camera[:3]]))

    def keypoint(self, world, own, own_body_hides, thickness) -> list[float]:
        """[x, y, 1] in pixels when seen, [0, 0, 0] when behind the camera, outside the image or hidden."""
        x, y, z = camera_math.project(self.K, self.w2c, world)
        if z <= 0 or not (0 <= x < self.width and 0 <= y < self.height):
            return [0.0, 0.0, 0.0]
        covered = self.depth is None or self.depth[int(y), int(x)] < z * (1 - SURFACE_TOLERANCE)
        if covered and self.hidden(world, z, own, own_body_hides, thickness):
            return [0.0, 0.0, 0.0]
        return [round(x, 2), round(y, 2), 1.0]

    def hidden(self, world, z, own, own_body_hides, thickness) -> bool:
        """Walk the ray from the camera to the point through every surface in front of it."""
        ray = world - self.origin
        distance = ray.length
        direction = ray / distance
        start, travelled = self.origin.copy(), 0.0
        for _ in range(_MAX_LAYERS):
            hit, location, _normal, _index, obj, _matrix = self.scene.ray_cast(
                self.depsgraph, start, direction, distance=distance - travelled
            )
            if not hit:
                return False
            gap = (world - location).length  # how far in front of the point this surface is
            if obj.name in own:
                if own_body_hides and gap > thickness:
                    return True
            elif gap > SURFACE_TOLERANCE * z and render_visibility.in_render(obj, self.collections):
                return True
            travelled = (location - self.origin).length + 1e-5 * distance
            start = self.origin + direction * travelled
            if travelled >= distance:
                return False
        return False


def describe_missing(scene, view_layer=None) -> str:
    """Why no character can be captured, and what to do."""
    found = candidates(scene, view_layer)
    if not found:
        return (
            "The pose guide found no armature in the view layer: add a rigged character (Rigify, Mixamo, "
            "Auto-Rig Pro or bones named like upper_arm.L / LeftArm), or switch the Pose guide off"
        )
    refused = [rigs.assess(o.data)["why"] for o in found[:3]]
    why = "; ".join(w for w in refused if w)
    names = ", ".join(o.name for o in found[:3])
    return (
        f"The pose guide cannot read a body from {names}{': ' + why if why else ''}. Map its bones by hand in "
        f"Guides > Pose > Bone Map (at least the neck and {rigs.USABLE_POINTS} of the 18 points), or switch "
        f"the Pose guide off"
    )
