"""The demo scene, built by code: a rigged character walking, a camera dollying in with a pan, ground and props.

The character is an armature with Mixamo bone names and primitive body parts skinned rigidly to the bones (bone
parenting), so the pose guide's rig maps recognise it like a character from Mixamo.
"""

from __future__ import annotations

import math

import bpy

# bone: (head, tail, parent) in metres, arms down, character facing -Y (toward the camera)
BONES = {
    "Hips": ((0, 0, 0.95), (0, 0, 1.05), None),
    "Spine": ((0, 0, 1.05), (0, 0, 1.35), "Hips"),
    "Neck": ((0, 0, 1.35), (0, 0, 1.5), "Spine"),
    "Head": ((0, 0, 1.5), (0, 0, 1.75), "Neck"),
    "LeftArm": ((0.2, 0, 1.38), (0.25, 0, 1.1), "Spine"),
    "LeftForeArm": ((0.25, 0, 1.1), (0.28, 0, 0.86), "LeftArm"),
    "LeftHand": ((0.28, 0, 0.86), (0.29, 0, 0.76), "LeftForeArm"),
    "RightArm": ((-0.2, 0, 1.38), (-0.25, 0, 1.1), "Spine"),
    "RightForeArm": ((-0.25, 0, 1.1), (-0.28, 0, 0.86), "RightArm"),
    "RightHand": ((-0.28, 0, 0.86), (-0.29, 0, 0.76), "RightForeArm"),
    "LeftUpLeg": ((0.1, 0, 0.95), (0.1, 0, 0.5), "Hips"),
    "LeftLeg": ((0.1, 0, 0.5), (0.1, 0, 0.08), "LeftUpLeg"),
    "LeftFoot": ((0.1, 0, 0.08), (0.1, -0.15, 0.0), "LeftLeg"),
    "RightUpLeg": ((-0.1, 0, 0.95), (-0.1, 0, 0.5), "Hips"),
    "RightLeg": ((-0.1, 0, 0.5), (-0.1, 0, 0.08), "RightUpLeg"),
    "RightFoot": ((-0.1, 0, 0.08), (-0.1, -0.15, 0.0), "RightLeg"),
}
PREFIX = "mixamorig:"


def _body_part(rig, bone: str, radius: float, sphere=False):
    head, tail, _ = BONES[bone]
    length = math.dist(head, tail)
    if sphere:
        bpy.ops.mesh.primitive_uv_sphere_add(radius=radius, segments=16, ring_count=8)
    else:
        bpy.ops.mesh.primitive_cylinder_add(radius=radius, depth=length, vertices=12)
    part = bpy.context.object
    part.name = f"Body.{bone}"
    part.parent = rig
    part.parent_type = "BONE"
    part.parent_bone = PREFIX + bone
    # bone parenting puts the origin at the bone's tail, y along the bone: move the part back to its middle
    part.location = (0, -length / 2, 0)
    part.rotation_euler = (math.pi / 2, 0, 0)
    return part


def character(name="Hero"):
    bpy.ops.object.armature_add(enter_editmode=True, location=(0, 0, 0))
    rig = bpy.context.object
    rig.name = name
    edit = rig.data.edit_bones
    edit.remove(edit[0])
    for bone, (head, tail, parent) in BONES.items():
        b = edit.new(PREFIX + bone)
        b.head, b.tail = head, tail
        if parent:
            b.parent = edit[PREFIX + parent]
            b.use_connect = tuple(edit[PREFIX + parent].tail) == tuple(head)
    bpy.ops.object.mode_set(mode="OBJECT")
    for bone in BONES:
        if bone == "Head":
            _body_part(rig, bone, 0.13, sphere=True)
        elif bone != "Hips":
            _body_part(rig, bone, 0.09 if "Spine" in bone else 0.05)
    return rig


def walk(rig, frames: int):
    """A walk cycle toward the camera: legs and arms swing in opposition, the hips bob, the character travels."""
    action = bpy.data.actions.new("Walk")
    rig.animation_data_create().action = action
    pose = rig.pose.bones
    for frame in range(1, frames + 1):
        phase = 2 * math.pi * (frame - 1) / 16
        swing = 0.5 * math.sin(phase)
        for side, sign in (("Left", 1), ("Right", -1)):
            leg, arm = pose[f"{PREFIX}{side}UpLeg"], pose[f"{PREFIX}{side}Arm"]
            knee = pose[f"{PREFIX}{side}Leg"]
            leg.rotation_mode = arm.rotation_mode = knee.rotation_mode = "XYZ"
            leg.rotation_euler = (sign * swing, 0, 0)
            knee.rotation_euler = (max(0.0, -sign * swing) * 1.2, 0, 0)
            arm.rotation_euler = (-sign * swing * 0.8, 0, 0)
            for b in (leg, arm, knee):
                b.keyframe_insert("rotation_euler", frame=frame)
        hips = pose[PREFIX + "Hips"]
        hips.location = (0, 0.03 * abs(math.cos(phase)), 0)  # the hips bone points up: its y is world z
        hips.keyframe_insert("location", frame=frame)
        rig.location = (0, -0.08 * (frame - 1), 0)
        rig.keyframe_insert("location", frame=frame)
    return action


def camera(frames: int):
    """A slow dolly in with a pan to the left, keyed at the first and last frame."""
    bpy.ops.object.camera_add(location=(1.6, -4.6, 1.3), rotation=(math.radians(86), 0, math.radians(16)))
    cam = bpy.context.object
    cam.data.lens = 35
    cam.keyframe_insert("location", frame=1)
    cam.keyframe_insert("rotation_euler", frame=1)
    cam.location = (1.0, -3.4, 1.25)
    cam.rotation_euler.z = math.radians(6)
    cam.keyframe_insert("location", frame=frames)
    cam.keyframe_insert("rotation_euler", frame=frames)
    return cam


def props():
    bpy.ops.mesh.primitive_plane_add(size=40)
    bpy.context.object.name = "Ground"
    for i, (x, y) in enumerate(((-2.5, 2.0), (2.8, 3.5), (-1.2, 5.0), (1.8, 0.8))):
        if i % 2:
            bpy.ops.mesh.primitive_cone_add(radius1=0.5, depth=1.4, location=(x, y, 0.7))
        else:
            bpy.ops.mesh.primitive_cube_add(size=0.9, location=(x, y, 0.45))
    bpy.ops.object.light_add(type="SUN", rotation=(0.6, 0.2, 0.8))


def build(frames: int = 16, size: int = 512, fps: int = 8):
    """A fresh scene with the character, its walk, the camera and the set; returns (scene, rig)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    if hasattr(scene, "marionette"):  # Marionette generates at its own size: the same here
        scene.marionette.long_side = size
    scene.render.fps, scene.render.fps_base = fps, 1.0
    scene.frame_start, scene.frame_end = 1, frames
    props()
    rig = character()
    walk(rig, frames)
    scene.camera = camera(frames)
    scene.frame_set(1)
    return scene, rig
