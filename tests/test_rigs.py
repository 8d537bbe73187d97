"""OpenPose keypoints from rigs in real bpy: bone maps (Rigify, Mixamo, names), projection, omission, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bpy  # a missing bpy is a collection error, never a skip
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402
from test_extension import PACKAGE, point_at, scene_with_camera  # noqa: E402

from backend import camera, face_points, passes, pose_capture, rigs  # noqa: E402

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0

W, H = 96, 64

RIGIFY_EXPECTED = {
    "nose": "nose.002",
    "neck": "spine.004",
    "right_shoulder": "upper_arm.R",
    "right_elbow": "forearm.R",
    "right_wrist": "hand.R",
    "left_shoulder": "upper_arm.L",
    "left_elbow": "forearm.L",
    "left_wrist": "hand.L",
    "right_hip": "thigh.R",
    "right_knee": "shin.R",
    "right_ankle": "foot.R",
    "left_hip": "thigh.L",
    "left_knee": "shin.L",
    "left_ankle": "foot.L",
    "right_eye": "eye.R",
    "left_eye": "eye.L",
    "right_ear": "ear.R",
    "left_ear": "ear.L",
}
MIXAMO_EXPECTED = {
    "neck": "Neck",
    "right_shoulder": "RightArm",
    "right_elbow": "RightForeArm",
    "right_wrist": "RightHand",
    "left_shoulder": "LeftArm",
    "left_elbow": "LeftForeArm",
    "left_wrist": "LeftHand",
    "right_hip": "RightUpLeg",
    "right_knee": "RightLeg",
    "right_ankle": "RightFoot",
    "left_hip": "LeftUpLeg",
    "left_knee": "LeftLeg",
    "left_ankle": "LeftFoot",
    "right_eye": "RightEye",
    "left_eye": "LeftEye",
    # no nose or ear bones in a Mixamo rig: placed from the head bone
    "nose": "Head",
    "right_ear": "Head",
    "left_ear": "Head",
}


# Built in a child process: after `rigify_generate` the bpy module hangs when its process exits (4.5 and 5.0), so
# the child saves the file and leaves with os._exit. The tests open the saved file.
_BUILD_RIGIFY = """
import os, sys, bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.preferences.addon_enable(module="rigify")
bpy.ops.object.armature_human_metarig_add()
bpy.ops.pose.rigify_generate()
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[1])
sys.stdout.flush()
os._exit(0)
"""


@pytest.fixture(scope="module")
def rigify_blend(tmp_path_factory):
    """A Rigify human built with the bundled rigify add-on: the metarig and the rig generated from it."""
    path = tmp_path_factory.mktemp("rigify") / "rigify.blend"
    built = subprocess.run(
        [sys.executable, "-c", _BUILD_RIGIFY, str(path)], capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0 and path.exists(), built.stdout[-2000:] + built.stderr[-2000:]
    return path


def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
    return scene


def mixamo_bones(prefix="mixamorig:"):
    """(name, head, tail, parent) of a Mixamo-named human in T-pose, 1.85 m, facing -Y, its left at +X."""
    bones = [
        ("Hips", (0, 0, 1.0), (0, 0, 1.1), None),
        ("Spine", (0, 0, 1.1), (0, 0, 1.25), "Hips"),
        ("Spine1", (0, 0, 1.25), (0, 0, 1.38), "Spine"),
        ("Spine2", (0, 0, 1.38), (0, 0, 1.5), "Spine1"),
        ("Neck", (0, 0, 1.5), (0, 0, 1.6), "Spine2"),
        ("Head", (0, 0, 1.6), (0, 0, 1.8), "Neck"),
        ("HeadTop_End", (0, 0, 1.8), (0, 0, 1.85), "Head"),
    ]
    for side, s in (("Left", 1), ("Right", -1)):
        bones += [
            (f"{side}Eye", (0.03 * s, -0.09, 1.71), (0.03 * s, -0.12, 1.71), "Head"),
            (f"{side}Shoulder", (0.03 * s, 0, 1.45), (0.15 * s, 0, 1.45), "Spine2"),
            (f"{side}Arm", (0.15 * s, 0, 1.45), (0.42 * s, 0, 1.45), f"{side}Shoulder"),
            (f"{side}ForeArm", (0.42 * s, 0, 1.45), (0.67 * s, 0, 1.45), f"{side}Arm"),
            (f"{side}Hand", (0.67 * s, 0, 1.45), (0.75 * s, 0, 1.45), f"{side}ForeArm"),
            (f"{side}UpLeg", (0.1 * s, 0, 1.0), (0.1 * s, 0, 0.55), "Hips"),
            (f"{side}Leg", (0.1 * s, 0, 0.55), (0.1 * s, 0, 0.1), f"{side}UpLeg"),
            (f"{side}Foot", (0.1 * s, 0, 0.1), (0.1 * s, -0.12, 0.02), f"{side}Leg"),
        ]
        for k, finger in enumerate(("Thumb", "Index", "Middle", "Ring", "Pinky")):
            x, y = (0.69 if finger == "Thumb" else 0.75) * s, -0.04 + 0.02 * k
            parent = f"{side}Hand"
            for i in range(1, 5):
                name = f"{side}Hand{finger}{i}"
                bones.append((name, (x, y, 1.45), (x + 0.025 * s, y, 1.45), parent))
                x, parent = x + 0.025 * s, name
    return [(prefix + n, h, t, p and prefix + p) for n, h, t, p in bones]


def add_armature(scene, bones, name="Armature", location=(0, 0, 0)):
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    obj.location = location
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for bone_name, head, tail, _parent in bones:
        bone = data.edit_bones.new(bone_name)
        bone.head, bone.tail = head, tail
    for bone_name, _head, _tail, parent in bones:
        if parent:
            data.edit_bones[bone_name].parent = data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def front_camera(scene, distance=5.0, height=1.0, lens=35.0):
    """A camera on -Y looking at the character's front (+Y)."""
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    cam.location, cam.rotation_euler = (0, -distance, height), (np.pi / 2, 0, 0)
    cam.data.lens = lens
    scene.collection.objects.link(cam)
    scene.camera = cam
    return cam


def path_for(scene, frames):
    return camera.camera_path(scene, frames, [None] * len(frames))


def body(frame_json, person=0):
    values = frame_json["people"][person]["pose_keypoints_2d"]
    return {p: values[3 * i : 3 * i + 3] for i, p in enumerate(rigs.BODY_POINTS)}


def expected_pixel(scene, obj, entry):
    """Where bpy_extras puts the evaluated point: (x, y) in pixels from the top-left corner."""
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    world = evaluated.matrix_world @ rigs.pose_point(evaluated.pose.bones, entry)
    u, v, z = world_to_camera_view(scene, scene.camera, world)
    return u * W, (1 - v) * H, z


# --- bone maps -----------------------------------------------------------------------------------------------


def test_rigify_metarig_and_generated_rig_map_every_point(rigify_blend):
    bpy.ops.wm.open_mainfile(filepath=str(rigify_blend))
    for name, kind, prefix in (("metarig", "Rigify metarig", ""), ("rig", "Rigify rig", "ORG-")):
        armature = bpy.data.objects[name].data
        report = rigs.report(armature)
        assert report["kind"] == kind and not report["missing"] and not report["estimated"] and report["usable"]
        mapping = rigs.body_map(armature)
        assert {p: mapping[p] for p in rigs.BODY_POINTS} == {
            p: (prefix + b, "head") for p, b in RIGIFY_EXPECTED.items()
        }
        hands = rigs.hand_maps(armature)
        assert hands["left"]["index_1"] == (prefix + "f_index.01.L", "head")
        assert hands["right"]["thumb_4"] == (prefix + "thumb.03.R", "tail") and len(hands["right"]) == 21


def test_face_points_without_face_bones_or_mesh_come_from_proportions_not_the_head_bones_length(rigify_blend):
    bpy.ops.wm.open_mainfile(filepath=str(rigify_blend))
    armature = bpy.data.objects["rig"].data
    found = rigs.assess(armature)
    mapping = found["map"]
    without_face = {p: e for p, e in mapping.items() if p not in rigs.FACE_POINTS}
    head_bone = mapping[rigs.HEAD][0]
    height = (armature.bones["ORG-spine.006"].tail_local - armature.bones["ORG-spine.006"].head_local).length

    def estimates():
        return {
            p: rigs.rest_point(armature, (head_bone, offset))
            for p, offset in face_points.estimate(armature, without_face, head_bone, found["axes"]).items()
        }

    before = estimates()
    for point, where in before.items():  # a rough place: within a third of the head's height of the face bone
        assert (where - rigs.rest_point(armature, mapping[point])).length < 0.35 * height, point
    assert before["left_eye"].x > before["nose"].x > before["right_eye"].x  # the rig faces -Y: its left is +X
    bpy.context.view_layer.objects.active = bpy.data.objects["rig"]
    bpy.ops.object.mode_set(mode="EDIT")
    bone = armature.edit_bones[head_bone]
    bone.tail = bone.head + (bone.tail - bone.head) * 40  # an importer's made-up length
    bpy.ops.object.mode_set(mode="OBJECT")
    for point, where in estimates().items():
        assert (where - before[point]).length < 1e-4, point


@pytest.mark.parametrize("prefix", ["mixamorig:", "mixamorig1:", "mixamorig_", "mixamorig", ""])
def test_mixamo_names_map_every_point(prefix):
    scene = empty_scene()
    obj = add_armature(scene, mixamo_bones(prefix))
    report = rigs.report(obj.data)
    assert report["kind"] == "Mixamo" and not report["missing"] and report["usable"]
    assert sorted(report["estimated"]) == ["left_ear", "nose", "right_ear"]
    mapping = rigs.body_map(obj.data)
    assert {p: mapping[p][0] for p in rigs.BODY_POINTS} == {p: prefix + b for p, b in MIXAMO_EXPECTED.items()}
    nose, left_ear = (rigs.rest_point(obj.data, mapping[p]) for p in ("nose", "left_ear"))
    assert nose.y < -0.05 and abs(nose.x) < 1e-6 and left_ear.x > 0.05  # in front of the face; ear on its left
    hands = rigs.hand_maps(obj.data)
    assert hands["left"]["pinky_4"] == (prefix + "LeftHandPinky4", "head") and len(hands["left"]) == 21


def test_unreal_names_and_an_ik_controller():
    scene = empty_scene()
    bones = [
        ("pelvis", (0, 0, 1.0), (0, 0, 1.2), None),
        ("spine_01", (0, 0, 1.2), (0, 0, 1.5), "pelvis"),
        ("neck_01", (0, 0, 1.5), (0, 0, 1.6), "spine_01"),
        ("head", (0, 0, 1.6), (0, 0, 1.8), "neck_01"),
        ("ik_hand_l", (0.7, 0, 1.4), (0.8, 0, 1.4), None),
    ]
    for s, x in (("l", 1), ("r", -1)):
        bones += [
            (f"upperarm_{s}", (0.15 * x, 0, 1.45), (0.42 * x, 0, 1.45), "spine_01"),
            (f"lowerarm_{s}", (0.42 * x, 0, 1.45), (0.67 * x, 0, 1.45), f"upperarm_{s}"),
            (f"hand_{s}", (0.67 * x, 0, 1.45), (0.75 * x, 0, 1.45), f"lowerarm_{s}"),
            (f"thigh_{s}", (0.1 * x, 0, 1.0), (0.1 * x, 0, 0.55), "pelvis"),
            (f"calf_{s}", (0.1 * x, 0, 0.55), (0.1 * x, 0, 0.1), f"thigh_{s}"),
            (f"foot_{s}", (0.1 * x, 0, 0.1), (0.1 * x, -0.1, 0.0), f"calf_{s}"),
        ]
    obj = add_armature(scene, bones)
    mapping = rigs.body_map(obj.data)
    assert rigs.report(obj.data)["kind"] == "Unreal mannequin" and not rigs.report(obj.data)["missing"]
    assert mapping["left_wrist"] == ("hand_l", "head") and mapping["right_knee"] == ("calf_r", "head")
    assert mapping["left_shoulder"] == ("upperarm_l", "head") and mapping["neck"] == ("neck_01", "head")
    assert [
        rigs.name_part(n)
        for n in (
            "eye.L",
            "LeftEye",
            "J_Adj_R_FaceEye",
            "ear.R",
            "nose",
            "eyelid.L",
            "eye_target.L",
            "MCH-eye.L",
            "forehead.L",
            "earring.L",
        )
    ] == [
        ("eye", "left"),
        ("eye", "left"),
        ("eye", "right"),
        ("ear", "right"),
        ("nose", None),
        None,
        None,
        None,
        None,
        None,
    ]


# --- projection and omission ---------------------------------------------------------------------------------


def test_t_pose_from_the_front_puts_the_right_shoulder_on_the_image_left():
    scene = empty_scene()
    obj = add_armature(scene, mixamo_bones())
    front_camera(scene)
    points = body(pose_capture.capture(scene, [obj.name], path_for(scene, [1]), hands=False)[0])
    assert all(c == 1.0 for _x, _y, c in points.values())
    assert points["right_shoulder"][0] < W / 2 < points["left_shoulder"][0]
    assert points["right_wrist"][0] < points["right_elbow"][0] < points["right_shoulder"][0]
    assert points["right_eye"][0] < points["nose"][0] < points["left_eye"][0]
    assert points["nose"][1] < points["neck"][1] < points["right_hip"][1] < points["right_ankle"][1]  # y down


def test_projection_agrees_with_bpy_extras_on_the_evaluated_pose():
    """An animated, constrained pose, a shifted camera and a non-square image: same pixels as world_to_camera_view."""
    scene = empty_scene()
    obj = add_armature(scene, mixamo_bones(), location=(0.3, 0.5, 0))
    cam = front_camera(scene, distance=4.0)
    cam.data.shift_x, cam.data.shift_y = 0.05, -0.03
    arm = obj.pose.bones["mixamorig:LeftArm"]
    arm.rotation_mode = "XYZ"
    for frame, angle in ((1, 0.0), (3, -1.2)):
        arm.rotation_euler = (0, angle, 0.5 * angle)
        arm.keyframe_insert("rotation_euler", frame=frame)
    obj.pose.bones["mixamorig:Head"].constraints.new("COPY_ROTATION").target = cam  # turned by a constraint
    frames = pose_capture.capture(scene, [obj.name], path_for(scene, [1, 2, 3]))
    mapping = rigs.body_map(obj.data)
    hand = rigs.hand_maps(obj.data)["left"]
    moved = []
    for frame, frame_json in zip((1, 2, 3), frames):
        scene.frame_set(frame)
        points = body(frame_json)
        for point, (x, y, c) in points.items():
            ex, ey, _z = expected_pixel(scene, obj, mapping[point])
            assert c == 1.0 and x == pytest.approx(ex, abs=0.02) and y == pytest.approx(ey, abs=0.02), point
        tip = frame_json["people"][0]["hand_left_keypoints_2d"][3 * 8 : 3 * 8 + 2]  # index finger tip
        assert tip == pytest.approx(expected_pixel(scene, obj, hand["index_4"])[:2], abs=0.02)
        moved.append(points["left_wrist"][:2])
    assert moved[0] != moved[2]  # the action was evaluated, not the rest pose


def box(scene, name, centre, size, parent=None):
    mesh = bpy.data.meshes.new(name)
    hx, hy, hz = (s / 2 for s in size)
    verts = [(x, y, z) for x in (-hx, hx) for y in (-hy, hy) for z in (-hz, hz)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    obj.location = centre
    scene.collection.objects.link(obj)
    if parent is not None:
        obj.modifiers.new("Armature", "ARMATURE").object = parent
    return obj


def test_a_wrist_behind_a_wall_is_omitted_and_the_own_body_hides_nothing(tmp_path):
    scene = empty_scene()
    obj = add_armature(scene, mixamo_bones())
    front_camera(scene)
    # the character's body: skinned to the armature, in front of the neck, shoulders and hips
    box(scene, "Body", (0, 0, 1.2), (0.5, 0.3, 0.7), parent=obj)
    cam, wrist = Vector(scene.camera.location), Vector((-0.67, 0, 1.45))
    box(scene, "Wall", cam.lerp(wrist, 0.8), (0.12, 0.02, 0.12))  # a metre in front of the right wrist only
    path = path_for(scene, [1])
    raw = passes.render_guides(scene, [1], tmp_path / "guides")["depth_raw"]
    points = body(pose_capture.capture(scene, [obj.name], path, raw, hands=False)[0])
    assert points["right_wrist"][2] == 0.0
    assert all(c == 1.0 for p, (_x, _y, c) in points.items() if p != "right_wrist"), points
    assert points["left_wrist"][2] == 1.0 and points["neck"][2] == 1.0 and points["right_hip"][2] == 1.0
    hidden = body(
        pose_capture.capture(scene, [obj.name], path, raw, hands=False, own_body_hides=True, thickness=0.05)[0]
    )
    assert hidden["neck"][2] == 0.0 and hidden["right_hip"][2] == 0.0 and hidden["left_wrist"][2] == 1.0
    # the same answers from ray casts alone (no depth pass)
    assert body(pose_capture.capture(scene, [obj.name], path, hands=False)[0]) == points


def test_a_character_walking_out_of_frame_loses_the_points_outside():
    scene = empty_scene()
    obj = add_armature(scene, mixamo_bones())
    front_camera(scene)
    for frame, x in ((1, 0.0), (5, 2.2)):  # walks to its left = the image's right
        obj.location.x = x
        obj.keyframe_insert("location", frame=frame)
    frames = pose_capture.capture(scene, [obj.name], path_for(scene, [1, 3, 5]), hands=False)
    mapping = rigs.body_map(obj.data)
    lost = []
    for frame, frame_json in zip((1, 3, 5), frames):
        scene.frame_set(frame)
        points = body(frame_json)
        for point, (x, y, c) in points.items():
            ex, ey, _z = expected_pixel(scene, obj, mapping[point])
            inside = 0 <= ex < W and 0 <= ey < H
            assert c == (1.0 if inside else 0.0), (frame, point)
            assert inside or (x, y) == (0.0, 0.0)
        lost.append(sum(c == 0 for _x, _y, c in points.values()))
    assert lost[0] == 0 and 0 < lost[2] < 18 and lost[1] <= lost[2]
    assert body(frames[2])["right_shoulder"][2] == 1.0 and body(frames[2])["left_wrist"][2] == 0.0


def test_several_characters_and_points_behind_the_camera():
    scene = empty_scene()
    a = add_armature(scene, mixamo_bones("mixamorig:"), "A", location=(-0.8, 0, 0))
    b = add_armature(scene, mixamo_bones("mixamorig1:"), "B", location=(0.8, 0, 0))
    behind = add_armature(scene, mixamo_bones(), "Behind", location=(0, -7, 0))
    front_camera(scene)
    assert [o.name for o in pose_capture.characters(scene)] == ["A", "B", "Behind"]
    frame = pose_capture.capture(scene, ["A", "B", "Behind"], path_for(scene, [1]), hands=False)[0]
    assert len(frame["people"]) == 3
    assert body(frame, 0)["neck"][0] < body(frame, 1)["neck"][0]
    assert all(v == 0.0 for v in frame["people"][2]["pose_keypoints_2d"])
    behind.hide_render = True
    assert [o.name for o in pose_capture.characters(scene)] == [a.name, b.name]


# --- through the extension and the server --------------------------------------------------------------------


def test_generate_with_the_pose_guide_sends_a_pose_file_the_server_draws(extension, tiny_server, tmp_path):
    scene = scene_with_camera(tmp_path, frames=2, size=64, steps=1)
    scene.marionette.use_pose = True
    with pytest.raises(RuntimeError, match="found no armature"):
        bpy.ops.marionette.generate()
    scene.marionette.use_depth = scene.marionette.use_normal = False
    obj = add_armature(scene, mixamo_bones(), location=(0, 0, -0.4))
    obj.data.marionette_pose.right_wrist = "mixamorig:RightForeArm"  # a custom pick wins over the automatic map
    ext_rigs = sys.modules[f"{PACKAGE}.backend.rigs"]
    assert ext_rigs.body_map(obj.data)["right_wrist"] == ("mixamorig:RightForeArm", "head")
    point_at(extension, tiny_server.url)
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    spec = sys.modules[f"{PACKAGE}.operators.generate"]._active.spec
    assert [c.kind for c in spec.controlnets] == ["openpose"]
    job_dir = Path(bpy.context.window_manager.marionette.job_dir)
    pose_json = json.loads((job_dir / "guides" / "pose.json").read_text())
    assert len(pose_json) == 2 and len(list(job_dir.glob("frame_*.png"))) == 2
    assert sum(c > 0 for c in pose_json[0]["people"][0]["pose_keypoints_2d"][2::3]) >= 8

    assert bpy.ops.marionette.capture_guides() == {"FINISHED"}  # Preview Guides: the server draws the frames
    guides = Path(bpy.context.window_manager.marionette.job_dir)
    assert sorted(p.name for p in guides.glob("pose_*.png")) == ["pose_0001.png", "pose_0002.png"]
    image = bpy.data.images["Marionette Pose Guide"]
    assert image.source == "SEQUENCE" and Path(bpy.path.abspath(image.filepath)) == guides / "pose_0001.png"
    png = sys.modules[f"{PACKAGE}.backend.png"]
    drawn = png.read_png(guides / "pose_0001.png")
    assert drawn.any()
    reference = controlnet_aux_drawing(json.loads((guides / "pose.json").read_text())[0], 64, 64, tmp_path)
    assert np.array_equal(drawn[..., :3], reference)

    path, name = tmp_path / "map.blend", obj.name  # the custom map is saved with the armature
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    assert bpy.data.objects[name].data.marionette_pose.right_wrist == "mixamorig:RightForeArm"


_DRAW = """
import json, sys
import numpy as np
from controlnet_aux.open_pose import BodyResult, PoseResult, draw_poses
from controlnet_aux.open_pose.body import Keypoint
frame, width, height, out = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def points(values, count):
    return [None if values[3 * k + 2] <= 0 else Keypoint(values[3 * k] / width, values[3 * k + 1] / height)
            for k in range(count)]

poses = [PoseResult(BodyResult(points(p["pose_keypoints_2d"], 18), 0.0, 18),
                    points(p["hand_left_keypoints_2d"], 21) if "hand_left_keypoints_2d" in p else None,
                    points(p["hand_right_keypoints_2d"], 21) if "hand_right_keypoints_2d" in p else None, None)
         for p in frame["people"]]
np.save(out, draw_poses(poses, height, width))
"""


def controlnet_aux_drawing(frame_json, width, height, tmp_path):
    """controlnet-aux's own drawing of the keypoints, made by the server's Python (the Blender 5 run has no
    controlnet-aux of its own), so the comparison runs on both Blender versions."""
    python = os.environ.get("MARIONETTE_SERVER_PYTHON") or sys.executable
    out = tmp_path / "reference.npy"
    done = subprocess.run(
        [python, "-c", _DRAW, json.dumps(frame_json), str(width), str(height), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)
