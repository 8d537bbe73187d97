"""Which bone gives which OpenPose keypoint: bone maps for the common rigs, a name heuristic and the custom map.

A map is {keypoint: (bone name, end)}. `end` is "head" or "tail" of that bone, or a Vector: a point fixed in the
bone's own rest frame (used for the face points estimated from the head bone). Left and right are the character's
own (Rigify `.L`, Mixamo `Left…`, Auto-Rig Pro `.l` = the character's left), as in shared/CONVENTIONS.md.

Covered rigs, tried in this order of tables (the one mapping most body points wins):
- Rigify generated rigs: the metarig's names with `ORG-`, else `DEF-` (ORG and DEF bones follow the final pose;
  MCH- bones are mechanism, not anatomy, and are never used). Rigify metarigs: the same names bare.
- Mixamo: `mixamorig:`, numbered `mixamorig1:` (several characters in one file), `mixamorig_`, or no prefix.
- Auto-Rig Pro: `.x/.l/.r` names of its deforming and finger bones (taken from its documented names; not checked
  against a real ARP file here).
- Anything else: bone names (Left/Right, .L/.R, _l/_r, L_ prefixes; upperarm/forearm/hand, thigh/upleg,
  shin/calf/leg, foot, neck, head, eye, ear, nose), skipping IK/FK/pole/target/twist/control bones.

Nose, eyes and ears come from dedicated bones when the rig has them, else from the head bone (`FACE_PROPORTIONS`).
Hands (21 points each, OpenPose order) come from finger bones when the rig has them. The 70 face points are not
mapped: no rig here has a standard set of face bones that matches the 68+2 face landmarks.
"""

from __future__ import annotations

import re

from mathutils import Vector

# COCO-18 as OpenPose and controlnet-aux order it (shared/CONVENTIONS.md).
BODY_POINTS = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
               "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
               "right_eye", "left_eye", "right_ear", "left_ear")
FACE_POINTS = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
# OpenPose hand: wrist, then per finger from the palm out (thumb: CMC, MCP, IP, tip; others: MCP, PIP, DIP, tip).
HAND_POINTS = ("wrist",) + tuple(f"{finger}_{i}" for finger in FINGERS for i in range(1, 5))
HEAD = "head"   # not a keypoint: the bone whose frame places estimated face points

# Face points from the head bone, for rigs without eye/ear/nose bones. In fractions of the head bone's length,
# from its head (the top of the neck), along the character's up (the bone), forward and sideways (+ = that
# side). Measured on Rigify's human metarig, whose head bone runs from the top of the neck to the crown.
FACE_PROPORTIONS = {
    "nose": (0.32, 0.86, 0.0),
    "eye": (0.57, 0.48, 0.26),
    "ear": (0.41, 0.03, 0.46),
}
# A character counts when its map has the neck and at least this many of the 18 body points.
USABLE_POINTS = 8


def _rigify_table() -> dict:
    table = {"nose": [("nose.002", "head")], "neck": [("spine.004", "head")], HEAD: [("spine.006", "head")]}
    for side, s in (("right", "R"), ("left", "L")):
        table.update({
            f"{side}_shoulder": [(f"upper_arm.{s}", "head")], f"{side}_elbow": [(f"forearm.{s}", "head")],
            f"{side}_wrist": [(f"hand.{s}", "head")], f"{side}_hip": [(f"thigh.{s}", "head")],
            f"{side}_knee": [(f"shin.{s}", "head")], f"{side}_ankle": [(f"foot.{s}", "head")],
            f"{side}_eye": [(f"eye.{s}", "head")], f"{side}_ear": [(f"ear.{s}", "head")],
        })
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
        table.update({
            f"{side}_shoulder": [(f"{s}Arm", "head")], f"{side}_elbow": [(f"{s}ForeArm", "head")],
            f"{side}_wrist": [(f"{s}Hand", "head")], f"{side}_hip": [(f"{s}UpLeg", "head")],
            f"{side}_knee": [(f"{s}Leg", "head")], f"{side}_ankle": [(f"{s}Foot", "head")],
            f"{side}_eye": [(f"{s}Eye", "head")],
        })
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
        table.update({
            f"{side}_shoulder": [(f"arm.{s}", "head"), (f"arm_twist.{s}", "head"), (f"shoulder.{s}", "tail")],
            f"{side}_elbow": [(f"forearm.{s}", "head"), (f"forearm_stretch.{s}", "head")],
            f"{side}_wrist": [(f"hand.{s}", "head")],
            f"{side}_hip": [(f"thigh.{s}", "head"), (f"thigh_twist.{s}", "head")],
            f"{side}_knee": [(f"leg.{s}", "head"), (f"leg_stretch.{s}", "head")],
            f"{side}_ankle": [(f"foot.{s}", "head")],
            f"{side}_eye": [(f"c_eye.{s}", "head")],
        })
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


# name -> (body table, hand tables by side, prefixes tried in order for every name)
RIG_TABLES = {
    "Rigify rig": (_rigify_table(), {"right": _rigify_hand("R"), "left": _rigify_hand("L")}, ("ORG-", "DEF-")),
    "Rigify metarig": (_rigify_table(), {"right": _rigify_hand("R"), "left": _rigify_hand("L")}, ("",)),
    "Mixamo": (_mixamo_table(), {"right": _mixamo_hand("Right"), "left": _mixamo_hand("Left")}, None),
    "Auto-Rig Pro": (_arp_table(), {"right": _arp_hand("r"), "left": _arp_hand("l")}, ("",)),
}
_MIXAMO_PREFIX = re.compile(r"^mixamorig\d*[:_]")


def _prefixes(kind: str, names) -> tuple[str, ...]:
    prefixes = RIG_TABLES[kind][2]
    if prefixes is not None:
        return prefixes
    found = sorted({m.group(0) for n in names if (m := _MIXAMO_PREFIX.match(n))})
    return (*found, "")   # several prefixes (two characters merged into one armature) are tried in turn


def _lookup(table: dict, names, prefixes) -> dict:
    """{point: (bone, end)} for the points whose candidate bone exists (first candidate, first prefix wins)."""
    out = {}
    for point, candidates in table.items():
        for bone, end in candidates:
            hit = next((p + bone for p in prefixes if p + bone in names), None)
            if hit is not None:
                out[point] = (hit, end)
                break
    return out


# --- the name heuristic -------------------------------------------------------------------------------------

_MECHANISM = {"ik", "fk", "pole", "target", "tgt", "ctrl", "ctl", "mch", "wgt", "helper", "twist", "roll", "ref",
              "parent", "tweak", "vis", "snap", "end", "socket", "master", "lock", "track", "null", "proxy"}
_FINGER_WORDS = ("thumb", "index", "middle", "ring", "pinky", "finger", "palm", "metacarpal")
# (keypoint part, words): first match wins, so forearm comes before arm and thigh before leg.
_PARTS = (
    ("elbow", ("forearm", "lowerarm", "elbow")),
    ("shoulder", ("upperarm", "uparm", "arm")),
    ("wrist", ("hand", "wrist")),
    ("hip", ("thigh", "upleg", "upperleg")),
    ("knee", ("shin", "calf", "lowerleg", "knee", "leg")),
    ("ankle", ("foot", "ankle")),
    ("neck", ("neck",)),
    ("head", ("head",)),
    ("eye", ("eye",)),
    ("ear", ("ear",)),
    ("nose", ("nose",)),
)
# Words that may be written as one ("UpperArm", "upperarm") or split ("upper_arm"); other words must stand alone,
# so "forehead" is no head and "earring" no ear.
_COMPOUNDS = {"forearm", "lowerarm", "upperarm", "uparm", "upleg", "upperleg", "lowerleg"}


def _words(name: str) -> list[str]:
    """Lower-case words of a bone name: split at separators, digits and camelCase humps."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^a-z]+", spaced.lower()) if w]


def _side(words: list[str]) -> str | None:
    if "left" in words or "l" in words:
        return "left"
    if "right" in words or "r" in words:
        return "right"
    return None


def name_part(name: str) -> tuple[str, str | None] | None:
    """(part, side) a bone name stands for, e.g. "upper_arm.L" -> ("shoulder", "left"); None when it is none."""
    words = _words(name)
    if name.upper().startswith(("MCH-", "WGT-", "VIS", "CTRL", "C_")) or _MECHANISM & set(words):
        return None
    side = _side(words)
    joined = "".join(w for w in words if w not in ("left", "right", "l", "r", "def", "org", "mixamorig"))
    if any(w in joined for w in _FINGER_WORDS):
        return None
    for part, keys in _PARTS:
        if any(k in words or (k in _COMPOUNDS and k in joined) for k in keys):
            if part in ("neck", "head", "nose"):
                return part, None
            return (part, side) if side else None
    return None


def _heuristic(bones) -> dict:
    """{point: (bone, "head")} from bone names; among several candidates: deforming first, then nearest the root."""
    found = {}
    for bone in bones:
        guess = name_part(bone.name)
        if guess is None:
            continue
        part, side = guess
        point = HEAD if part == "head" else part if side is None else f"{side}_{part}"
        if point not in BODY_POINTS and point != HEAD:
            continue
        rank = (not bone.use_deform, len(bone.parent_recursive), len(bone.name))
        if point not in found or rank < found[point][0]:
            found[point] = (rank, bone.name)
    return {point: (name, "head") for point, (_rank, name) in found.items()}


# --- maps ---------------------------------------------------------------------------------------------------

def automatic(armature) -> tuple[str, dict]:
    """(rig kind, {point or HEAD: (bone, end)}) for an Armature datablock, before face estimates."""
    names = set(armature.bones.keys())
    best_kind, best = "Bone names", {}
    for kind, (table, _hands, _p) in RIG_TABLES.items():
        found = _lookup(table, names, _prefixes(kind, names))
        if _body_count(found) > _body_count(best):
            best_kind, best = kind, found
    guessed = _heuristic(armature.bones)
    if _body_count(guessed) > _body_count(best):   # a rig's own table wins a tie
        return "Bone names", guessed
    return best_kind, best


def _body_count(mapping) -> int:
    return sum(1 for p in BODY_POINTS if p in mapping)


def custom(armature) -> dict:
    """{point: (bone, end)} the artist picked (Armature.marionette_pose); bones that no longer exist are skipped."""
    settings = getattr(armature, "marionette_pose", None)
    out = {}
    if settings is None:
        return out
    for point in BODY_POINTS + (HEAD,):
        bone = getattr(settings, point, "")
        if bone and bone in armature.bones:
            out[point] = (bone, getattr(settings, f"{point}_end", "HEAD").lower())
    return out


def body_map(armature, auto=None) -> dict:
    """The 18-point map (and HEAD) used for capture: the custom picks win, then the rig's table or names, then
    face points estimated from the head bone. `auto`: automatic(armature) when already known."""
    mapping = dict((auto or automatic(armature))[1])
    mapping.update(custom(armature))
    head = mapping.get(HEAD)
    if head is not None:
        for point, offset in face_estimates(armature, mapping).items():
            mapping.setdefault(point, (head[0], offset))
    return mapping


def hand_maps(armature, auto=None) -> dict:
    """{"left": {21 points}, "right": {...}} for the hands whose finger bones the rig has (a wrist and a finger)."""
    kind, _body = auto or automatic(armature)
    if kind not in RIG_TABLES:
        return {}
    names = set(armature.bones.keys())
    prefixes = _prefixes(kind, names)
    hands = {}
    for side, table in RIG_TABLES[kind][1].items():
        found = _lookup(table, names, prefixes)
        if "wrist" in found and len(found) >= 5:
            hands[side] = found
    return hands


def face_estimates(armature, mapping) -> dict:
    """{face point: Vector in the head bone's rest frame} placed by FACE_PROPORTIONS.

    The character's frame comes from the rest pose: up along the head bone, left from the right to the left
    shoulder (else hip), forward = left × up (a character facing −Y with its left at +X has forward −Y).
    """
    bone = armature.bones[mapping[HEAD][0]]
    head, tail = bone.head_local, bone.tail_local
    length = (tail - head).length
    if length == 0:
        return {}
    up = (tail - head).normalized()
    left = None
    for a, b in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")):
        if a in mapping and b in mapping:
            left = rest_point(armature, mapping[a]) - rest_point(armature, mapping[b])
            break
    if left is None:
        left = Vector((1.0, 0.0, 0.0))
    left = (left - up * left.dot(up))
    if left.length == 0:
        return {}
    left.normalize()
    forward = left.cross(up)
    to_bone = bone.matrix_local.inverted()
    out = {}
    for point in FACE_POINTS:
        part = point.split("_")[-1]
        u, f, s = FACE_PROPORTIONS[part]
        sign = -1.0 if point.startswith("right") else 1.0
        rest = head + (up * u + forward * f + left * (sign * s)) * length
        out[point] = to_bone @ rest
    return out


def rest_point(armature, entry) -> Vector:
    """A map entry's point in armature space at rest."""
    bone = armature.bones[entry[0]]
    end = entry[1]
    if isinstance(end, str):
        return (bone.head_local if end == "head" else bone.tail_local).copy()
    return bone.matrix_local @ end


def pose_point(pose_bones, entry) -> Vector:
    """A map entry's point in armature space in the current (evaluated) pose."""
    pbone = pose_bones[entry[0]]
    end = entry[1]
    if isinstance(end, str):
        return (pbone.head if end == "head" else pbone.tail).copy()
    return pbone.matrix @ end


def report(armature) -> dict:
    """What the panel shows: the rig kind, body points mapped (with their bones), missing, estimated, hands."""
    auto = automatic(armature)
    kind, automatic_map = auto
    mapping = body_map(armature, auto)
    picked = custom(armature)
    return {
        "kind": kind,
        "mapped": {p: mapping[p][0] for p in BODY_POINTS if p in mapping},
        "missing": [p for p in BODY_POINTS if p not in mapping],
        "estimated": [p for p in FACE_POINTS if p in mapping and not isinstance(mapping[p][1], str)],
        "custom": sorted(picked),
        "automatic": {p: automatic_map[p][0] for p in BODY_POINTS + (HEAD,) if p in automatic_map},
        "hands": sorted(hand_maps(armature, auto)),
        "usable": usable(mapping),
    }


def usable(mapping) -> bool:
    return "neck" in mapping and _body_count(mapping) >= USABLE_POINTS
