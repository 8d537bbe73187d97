"""The keypoints Marionette maps (COCO-18 body, 21-point hands) and the naming tables of known rig families, with
the lookup that applies a table to an armature's bone names. Bone maps themselves are made in rigs.py."""

from __future__ import annotations

import re

# COCO-18 as OpenPose and controlnet-aux order it (docs/CONVENTIONS.md).
BODY_POINTS = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
FACE_POINTS = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
# OpenPose hand: wrist, then per finger from the palm out (thumb: CMC, MCP, IP, tip; others: MCP, PIP, DIP, tip).
HAND_POINTS = ("wrist",) + tuple(f"{finger}_{i}" for finger in FINGERS for i in range(1, 5))
HEAD = "head"  # not a keypoint: the bone whose frame places estimated face points


def _rigify_table() -> dict:
    table = {"nose": [("nose.002", "head")], "neck": [("spine.004", "head")], HEAD: [("spine.006", "head")]}
    for side, s in (("right", "R"), ("left", "L")):
        table.update(
            {
                f"{side}_shoulder": [(f"upper_arm.{s}", "head")],
                f"{side}_elbow": [(f"forearm.{s}", "head")],
                f"{side}_wrist": [(f"hand.{s}", "head")],
                f"{side}_hip": [(f"thigh.{s}", "head")],
                f"{side}_knee": [(f"shin.{s}", "head")],
                f"{side}_ankle": [(f"foot.{s}", "head")],
                f"{side}_eye": [(f"eye.{s}", "head")],
                f"{side}_ear": [(f"ear.{s}", "head")],
            }
        )
    return table


def _rigify_hand(s: str) -> dict:
    hand = {"wrist": [(f"hand.{s}", "head")]}
    for finger in FINGERS:
        bone = "thumb" if finger == "thumb" else f"f_{finger}"
        for i in (1, 2, 3):
            hand[f"{finger}_{i}"] = [(f"{bone}.0{i}.{s}", "head")]
        hand[f"{finger}_4"] = [(f"{bone}.03.{s}", "tail")]
    return hand


def _mixamo_table() -> dict:
    table = {"neck": [("Neck", "head")], HEAD: [("Head", "head")]}
    for side, s in (("right", "Right"), ("left", "Left")):
        table.update(
            {
                f"{side}_shoulder": [(f"{s}Arm", "head")],
                f"{side}_elbow": [(f"{s}ForeArm", "head")],
                f"{side}_wrist": [(f"{s}Hand", "head")],
                f"{side}_hip": [(f"{s}UpLeg", "head")],
                f"{side}_knee": [(f"{s}Leg", "head")],
                f"{side}_ankle": [(f"{s}Foot", "head")],
                f"{side}_eye": [(f"{s}Eye", "head")],
            }
        )
    return table


def _mixamo_hand(s: str) -> dict:
    hand = {"wrist": [(f"{s}Hand", "head")]}
    for finger in FINGERS:
        bone = f"{s}Hand{finger.capitalize()}"
        for i in (1, 2, 3):
            hand[f"{finger}_{i}"] = [(f"{bone}{i}", "head")]
        hand[f"{finger}_4"] = [(f"{bone}4", "head"), (f"{bone}3", "tail")]
    return hand


def _arp_table() -> dict:
    table = {"neck": [("neck.x", "head")], HEAD: [("head.x", "head")]}
    for side, s in (("right", "r"), ("left", "l")):
        table.update(
            {
                f"{side}_shoulder": [(f"arm.{s}", "head"), (f"arm_twist.{s}", "head"), (f"shoulder.{s}", "tail")],
                f"{side}_elbow": [(f"forearm.{s}", "head"), (f"forearm_stretch.{s}", "head")],
                f"{side}_wrist": [(f"hand.{s}", "head")],
                f"{side}_hip": [(f"thigh.{s}", "head"), (f"thigh_twist.{s}", "head")],
                f"{side}_knee": [(f"leg.{s}", "head"), (f"leg_stretch.{s}", "head")],
                f"{side}_ankle": [(f"foot.{s}", "head")],
                f"{side}_eye": [(f"c_eye.{s}", "head")],
            }
        )
    return table


def _arp_hand(s: str) -> dict:
    hand = {"wrist": [(f"hand.{s}", "head")]}
    for finger in FINGERS:
        # ARP's first finger bones are thumb1/index1... (deforming) or their c_ controllers; 2 and 3 are c_ bones.
        hand[f"{finger}_1"] = [(f"{finger}1.{s}", "head"), (f"c_{finger}1.{s}", "head")]
        hand[f"{finger}_2"] = [(f"c_{finger}2.{s}", "head"), (f"{finger}2.{s}", "head")]
        hand[f"{finger}_3"] = [(f"c_{finger}3.{s}", "head"), (f"{finger}3.{s}", "head")]
        hand[f"{finger}_4"] = [(f"c_{finger}3.{s}", "tail"), (f"{finger}3.{s}", "tail")]
    return hand


def _side_table(neck, head, parts, sides, eye=None) -> dict:
    """A body table from {point part: [name patterns with {s}]} for rigs that spell the side inside the name."""
    table = {"neck": [(n, "head") for n in neck], HEAD: [(n, "head") for n in head]}
    for side, s in zip(("right", "left"), sides):
        for part, patterns in parts.items():
            table[f"{side}_{part}"] = [(p.format(s=s), "head") for p in patterns]
        if eye:
            table[f"{side}_eye"] = [(p.format(s=s), "head") for p in eye]
    return table


_UNREAL = _side_table(
    ["neck_01", "neck"],
    ["head"],
    {
        "shoulder": ["upperarm_{s}"],
        "elbow": ["lowerarm_{s}"],
        "wrist": ["hand_{s}"],
        "hip": ["thigh_{s}"],
        "knee": ["calf_{s}"],
        "ankle": ["foot_{s}"],
    },
    ("r", "l"),
)
_VROID = _side_table(
    ["J_Bip_C_Neck"],
    ["J_Bip_C_Head"],
    {
        "shoulder": ["J_Bip_{s}_UpperArm"],
        "elbow": ["J_Bip_{s}_LowerArm"],
        "wrist": ["J_Bip_{s}_Hand"],
        "hip": ["J_Bip_{s}_UpperLeg"],
        "knee": ["J_Bip_{s}_LowerLeg"],
        "ankle": ["J_Bip_{s}_Foot"],
    },
    ("R", "L"),
    eye=["J_Adj_{s}_FaceEye", "J_Bip_{s}_Eye"],
)
_DAZ = _side_table(
    ["neckLower", "neck"],
    ["head"],
    {
        "shoulder": ["{s}ShldrBend", "{s}Shldr"],
        "elbow": ["{s}ForearmBend", "{s}ForeArm"],
        "wrist": ["{s}Hand"],
        "hip": ["{s}ThighBend", "{s}Thigh"],
        "knee": ["{s}Shin"],
        "ankle": ["{s}Foot"],
    },
    ("r", "l"),
    eye=["{s}Eye"],
)
_CC = _side_table(
    ["CC_Base_NeckTwist01"],
    ["CC_Base_Head"],
    {
        "shoulder": ["CC_Base_{s}_Upperarm"],
        "elbow": ["CC_Base_{s}_Forearm"],
        "wrist": ["CC_Base_{s}_Hand"],
        "hip": ["CC_Base_{s}_Thigh"],
        "knee": ["CC_Base_{s}_Calf"],
        "ankle": ["CC_Base_{s}_Foot"],
    },
    ("R", "L"),
    eye=["CC_Base_{s}_Eye"],
)


# name -> (body table, hand tables by side (None: finger words), prefixes tried in order for every name)
RIG_TABLES = {
    "Rigify rig": (_rigify_table(), {"right": _rigify_hand("R"), "left": _rigify_hand("L")}, ("ORG-", "DEF-")),
    "Rigify metarig": (_rigify_table(), {"right": _rigify_hand("R"), "left": _rigify_hand("L")}, ("",)),
    "Mixamo": (_mixamo_table(), {"right": _mixamo_hand("Right"), "left": _mixamo_hand("Left")}, None),
    "Auto-Rig Pro": (_arp_table(), {"right": _arp_hand("r"), "left": _arp_hand("l")}, ("",)),
    "Unreal mannequin": (_UNREAL, None, ("",)),
    "VRoid": (_VROID, None, ("",)),
    "DAZ Genesis": (_DAZ, None, ("",)),
    "Character Creator": (_CC, None, ("",)),
}
_MIXAMO_PREFIX = re.compile(r"^mixamorig\d*(?:[:_]|(?=[A-Z]))")


def table_prefixes(kind: str, names) -> tuple[str, ...]:
    prefixes = RIG_TABLES[kind][2]
    if prefixes is not None:
        return prefixes
    found = sorted({m.group(0) for n in names if (m := _MIXAMO_PREFIX.match(n))})
    return (*found, "")  # several prefixes (two characters merged into one armature) are tried in turn


def lookup(table: dict, names, prefixes) -> dict:
    """{point: (bone, end)} for the points whose candidate bone exists (first candidate, first prefix wins)."""
    out = {}
    for point, candidates in table.items():
        for bone, end in candidates:
            hit = next((p + bone for p in prefixes if p + bone in names), None)
            if hit is not None:
                out[point] = (hit, end)
                break
    return out
