"""Rigged characters rebuilt for the naming families whose public characters cannot be shipped here (Mixamo's
licence forbids redistributing its characters; no small CC0 UE-mannequin, VRoid, DAZ or Character Creator file
was found): a skinned, animated humanoid with that family's bone names, written with Blender's own glTF or FBX
exporter and read back with the matching importer, so the bones arrive as imported bones do (made-up lengths,
Y-up conversions, `_end` nodes, cm scales).

The body faces -Y with its left at +X; 1.82 m tall; a head box with a nose on its front.
"""

from __future__ import annotations

import math

import bpy
from mathutils import Vector

# canonical joint: (head position, parent)
JOINTS = {
    "hips": ((0, 0, 1.0), None),
    "spine": ((0, 0, 1.1), "hips"),
    "chest": ((0, 0, 1.3), "spine"),
    "neck": ((0, 0, 1.5), "chest"),
    "head": ((0, 0, 1.6), "neck"),
    "headtop": ((0, 0, 1.82), "head"),
}
for _s, _x in (("L", 1), ("R", -1)):
    JOINTS.update(
        {
            f"clavicle{_s}": ((0.03 * _x, 0, 1.45), "chest"),
            f"upperarm{_s}": ((0.17 * _x, 0, 1.45), f"clavicle{_s}"),
            f"forearm{_s}": ((0.45 * _x, 0, 1.45), f"upperarm{_s}"),
            f"hand{_s}": ((0.7 * _x, 0, 1.45), f"forearm{_s}"),
            f"thigh{_s}": ((0.1 * _x, 0, 0.98), "hips"),
            f"shin{_s}": ((0.1 * _x, -0.01, 0.55), f"thigh{_s}"),
            f"foot{_s}": ((0.1 * _x, 0.02, 0.1), f"shin{_s}"),
            f"toe{_s}": ((0.1 * _x, -0.1, 0.02), f"foot{_s}"),
            f"toeend{_s}": ((0.1 * _x, -0.16, 0.02), f"toe{_s}"),
        }
    )
    for _k, _finger in enumerate(("thumb", "index", "middle", "ring", "pinky")):
        _parent, _y = f"hand{_s}", -0.04 + 0.02 * _k
        for _i in range(1, 5):
            JOINTS[f"{_finger}{_i}{_s}"] = ((0.78 * _x + 0.025 * (_i - 1) * _x, _y, 1.45), _parent)
            _parent = f"{_finger}{_i}{_s}"
FINGERS = ("thumb", "index", "middle", "ring", "pinky")


def _mixamo(prefix):
    def name(joint):
        side = {"L": "Left", "R": "Right"}.get(joint[-1], "") if joint[-1] in "LR" else ""
        base = joint[:-1] if side else joint
        table = {
            "hips": "Hips",
            "spine": "Spine",
            "chest": "Spine1",
            "neck": "Neck",
            "head": "Head",
            "headtop": "HeadTop_End",
            "clavicle": "Shoulder",
            "upperarm": "Arm",
            "forearm": "ForeArm",
            "hand": "Hand",
            "thigh": "UpLeg",
            "shin": "Leg",
            "foot": "Foot",
            "toe": "ToeBase",
            "toeend": "Toe_End",
        }
        if base in table:
            return prefix + side + table[base]
        return prefix + f"{side}Hand{base[:-1].capitalize()}{base[-1]}"

    return name


def _unreal(joint):
    side = joint[-1].lower() if joint[-1] in "LR" else ""
    base = joint[:-1] if side else joint
    table = {
        "hips": "pelvis",
        "spine": "spine_01",
        "chest": "spine_02",
        "neck": "neck_01",
        "head": "head",
        "headtop": "head_end",
        "clavicle": "clavicle",
        "upperarm": "upperarm",
        "forearm": "lowerarm",
        "hand": "hand",
        "thigh": "thigh",
        "shin": "calf",
        "foot": "foot",
        "toe": "ball",
        "toeend": "ball_end",
    }
    if base in table:
        return table[base] + (f"_{side}" if side else "")
    return f"{base[:-1]}_0{base[-1]}_{side}" if base[-1] != "4" else f"{base[:-1]}_end_{side}"


def _vroid(joint):
    side = joint[-1] if joint[-1] in "LR" else "C"
    base = joint[:-1] if side != "C" else joint
    table = {
        "hips": "Hips",
        "spine": "Spine",
        "chest": "Chest",
        "neck": "Neck",
        "head": "Head",
        "headtop": "Head_end",
        "clavicle": "Shoulder",
        "upperarm": "UpperArm",
        "forearm": "LowerArm",
        "hand": "Hand",
        "thigh": "UpperLeg",
        "shin": "LowerLeg",
        "foot": "Foot",
        "toe": "ToeBase",
        "toeend": "ToeBase_end",
    }
    if base in table:
        return f"J_Bip_{side}_{table[base]}"
    finger = {"pinky": "Little"}.get(base[:-1], base[:-1].capitalize())
    return f"J_Bip_{side}_{finger}{base[-1]}" if base[-1] != "4" else f"J_Bip_{side}_{finger}3_end"


def _words(joint):
    """Unity/Godot humanoid names: Left/Right words."""
    side = {"L": "Left", "R": "Right"}.get(joint[-1], "") if joint[-1] in "LR" else ""
    base = joint[:-1] if side else joint
    table = {
        "hips": "Hips",
        "spine": "Spine",
        "chest": "Chest",
        "neck": "Neck",
        "head": "Head",
        "headtop": "HeadTop",
        "clavicle": "Shoulder",
        "upperarm": "UpperArm",
        "forearm": "LowerArm",
        "hand": "Hand",
        "thigh": "UpperLeg",
        "shin": "LowerLeg",
        "foot": "Foot",
        "toe": "Toes",
        "toeend": "ToesEnd",
    }
    if base in table:
        return side + table[base]
    return f"{side}{base[:-1].capitalize()}{('Proximal', 'Intermediate', 'Distal', 'Tip')[int(base[-1]) - 1]}"


def _blender(joint):
    """Blender `.L/.R` names (Quaternius style)."""
    side = joint[-1] if joint[-1] in "LR" else ""
    base = joint[:-1] if side else joint
    table = {
        "hips": "Hips",
        "spine": "Spine",
        "chest": "Chest",
        "neck": "Neck",
        "head": "Head",
        "headtop": "Head_end",
        "clavicle": "Shoulder",
        "upperarm": "UpperArm",
        "forearm": "LowerArm",
        "hand": "Hand",
        "thigh": "UpperLeg",
        "shin": "LowerLeg",
        "foot": "Foot",
        "toe": "Toe",
        "toeend": "Toe_end",
    }
    name = table.get(base) or f"{base[:-1].capitalize()}.{base[-1]:0>3}"
    return f"{name}.{side}" if side else name


FAMILIES = {"mixamo": _mixamo("mixamorig:"), "unreal": _unreal, "vroid": _vroid, "words": _words, "blender": _blender}


def build(family: str, scale: float = 1.0, extras=()):
    """The rig in the current (empty) scene: armature, skinned body mesh, a 16-frame walk. `scale`: the
    armature's object scale, the bones' coordinates divided by it (0.01: Mixamo's centimetres)."""
    name = FAMILIES[family]
    scene = bpy.context.scene
    data = bpy.data.armatures.new("Armature")
    rig = bpy.data.objects.new("Armature", data)
    rig.scale = (scale,) * 3
    scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for joint, (head, parent) in JOINTS.items():
        bone = data.edit_bones.new(name(joint))
        bone.head = Vector(head) / scale
        children = [j for j, (_h, p) in JOINTS.items() if p == joint]
        tail = Vector(JOINTS[children[-1 if joint.startswith("hand") else 0]][0]) if children else None
        if tail is None or (tail - Vector(head)).length < 1e-4:
            tail = Vector(head) + (Vector(head) - Vector(JOINTS[parent][0])).normalized() * 0.03
        bone.tail = tail / scale
    for joint, (_head, parent) in JOINTS.items():
        if parent:
            data.edit_bones[name(joint)].parent = data.edit_bones[name(parent)]
    for extra_name, head, tail, parent, deform in extras:
        bone = data.edit_bones.new(extra_name)
        bone.head, bone.tail = Vector(head) / scale, Vector(tail) / scale
        bone.parent = data.edit_bones[parent] if parent else None
        bone.use_deform = deform
    bpy.ops.object.mode_set(mode="OBJECT")
    body = _body(scene, rig, name)
    _walk(rig, name)
    return rig, body


def _body(scene, rig, name):
    """Boxes along the limbs and trunk, a head box with a nose; every box weighted to its own bone."""
    verts, faces, groups = [], [], []

    def box(centre, size, bone):
        base = len(verts)
        hx, hy, hz = (s / 2 for s in size)
        verts.extend(
            (centre[0] + x, centre[1] + y, centre[2] + z) for x in (-hx, hx) for y in (-hy, hy) for z in (-hz, hz)
        )
        faces.extend(
            tuple(base + i for i in f)
            for f in ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3))
        )
        groups.append((bone, range(base, base + 8)))

    for joint, (head, parent) in JOINTS.items():
        if joint in ("head", "headtop") or joint.startswith(FINGERS) or joint.startswith("toeend") or parent is None:
            continue
        a, b = Vector(JOINTS[parent][0]), Vector(head)
        size = [max(abs(b[i] - a[i]), 0.07) for i in range(3)]
        box((a + b) / 2, size, name(parent))
    box((0, 0.0, 1.72), (0.18, 0.2, 0.24), name("head"))
    box((0, -0.12, 1.69), (0.035, 0.05, 0.045), name("head"))  # the nose
    mesh = bpy.data.meshes.new("Body")
    mesh.from_pydata(verts, [], faces)
    body = bpy.data.objects.new("Body", mesh)
    scene.collection.objects.link(body)
    for bone, indices in groups:
        group = body.vertex_groups.get(bone) or body.vertex_groups.new(name=bone)
        group.add(list(indices), 1.0, "REPLACE")
    body.modifiers.new("Armature", "ARMATURE").object = rig
    body.parent = rig
    body.matrix_parent_inverse = rig.matrix_world.inverted()
    return body


def _walk(rig, name):
    """16 frames: arms and legs swing, the spine twists, the head turns."""
    rig.animation_data_create()
    for frame in range(1, 17):
        phase = math.sin(2 * math.pi * (frame - 1) / 16)
        for joint, axis, amount in (
            ("upperarmL", 1, 0.5),
            ("upperarmR", 1, -0.5),
            ("thighL", 0, 0.5),
            ("thighR", 0, -0.5),
            ("shinL", 0, -0.3),
            ("chest", 2, 0.2),
            ("head", 2, 0.3),
            ("forearmL", 2, 0.4),
        ):
            pbone = rig.pose.bones[name(joint)]
            pbone.rotation_mode = "XYZ"
            angles = [0.0, 0.0, 0.0]
            angles[axis] = amount * phase
            pbone.rotation_euler = angles
            pbone.keyframe_insert("rotation_euler", frame=frame)
        rig.location.x = 0.02 * (frame - 1)
        rig.keyframe_insert("location", frame=frame)


def export_import(family: str, path, fmt: str, scale: float = 1.0, extras=()):
    """Build the rig in an empty file, write it with Blender's exporter (`fmt` "glb" or "fbx"); returns path."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 16
    build(family, scale, extras)
    if fmt == "glb":
        bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", export_animations=True)
    else:
        bpy.ops.export_scene.fbx(
            filepath=str(path),
            add_leaf_bones=False,
            bake_anim=True,
            bake_anim_use_all_actions=False,
            bake_anim_use_nla_strips=False,
            bake_anim_simplify_factor=0.0,
        )
    return path


# A quadruped named as the public Fox is (its front legs called arms), for the refusal test without the file.
QUADRUPED = {
    "b_Root_00": ((0, 0.45, 0.75), None),
    "b_Hip_01": ((0, 0.4, 0.75), "b_Root_00"),
    "b_Spine01_02": ((0, 0.2, 0.78), "b_Hip_01"),
    "b_Spine02_03": ((0, -0.05, 0.8), "b_Spine01_02"),
    "b_Neck_04": ((0, -0.3, 0.82), "b_Spine02_03"),
    "b_Head_05": ((0, -0.45, 0.95), "b_Neck_04"),
    "b_HeadEnd": ((0, -0.7, 0.95), "b_Head_05"),
    "b_Tail01_012": ((0, 0.5, 0.78), "b_Hip_01"),
    "b_Tail02_013": ((0, 0.8, 0.7), "b_Tail01_012"),
}
for _side, _x in (("Left", 0.12), ("Right", -0.12)):
    QUADRUPED.update(
        {
            f"b_{_side}UpperArm_09": ((_x, -0.25, 0.7), "b_Spine02_03"),
            f"b_{_side}ForeArm_010": ((_x, -0.25, 0.4), f"b_{_side}UpperArm_09"),
            f"b_{_side}Hand_011": ((_x, -0.27, 0.08), f"b_{_side}ForeArm_010"),
            f"b_{_side}Finger_end": ((_x, -0.32, 0.0), f"b_{_side}Hand_011"),
            f"b_{_side}Leg01_015": ((_x, 0.4, 0.7), "b_Hip_01"),
            f"b_{_side}Leg02_016": ((_x, 0.38, 0.4), f"b_{_side}Leg01_015"),
            f"b_{_side}Foot01_017": ((_x, 0.42, 0.08), f"b_{_side}Leg02_016"),
            f"b_{_side}Foot_end": ((_x, 0.38, 0.0), f"b_{_side}Foot01_017"),
        }
    )


def build_quadruped():
    """A four-legged armature (horizontal spine, four legs to the ground), every bone deforming."""
    data = bpy.data.armatures.new("Fox")
    rig = bpy.data.objects.new("Fox", data)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for bone_name, (head, _parent) in QUADRUPED.items():
        bone = data.edit_bones.new(bone_name)
        bone.head = Vector(head)
        children = [n for n, (_h, p) in QUADRUPED.items() if p == bone_name]
        tail = Vector(QUADRUPED[children[0]][0]) if children else Vector(head) + Vector((0, -0.05, 0))
        bone.tail = tail if (tail - Vector(head)).length > 1e-4 else Vector(head) + Vector((0, 0, 0.05))
    for bone_name, (_head, parent) in QUADRUPED.items():
        if parent:
            data.edit_bones[bone_name].parent = data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    return rig
