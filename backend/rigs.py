"""Which bone gives which OpenPose keypoint: rig tables, the rig's chain structure, the name heuristic, the custom map.

A map is {keypoint: (bone name, end)}. `end` is "head" or "tail" of that bone, or a Vector: a point fixed in the
bone's own rest frame (a limb's end read from the importer's end node, a face point placed from the head's mesh).
Left and right are the character's own (Rigify `.L`, Mixamo `Left…`, Auto-Rig Pro `.l` = the character's left),
as in docs/CONVENTIONS.md.

First the structure (rig_structure.py) says whether the armature is a person at all; a quadruped, a vehicle or a
prop rig gets no automatic map (only points picked by hand) and a message for the panel. Then, for a person:
- a rig table when one maps the limbs: Rigify generated rigs (`ORG-`, else `DEF-`) and metarigs, Mixamo (every
  prefix form: `mixamorig:`, `mixamorig1:`, `mixamorig_`, `mixamorigHips` as three.js writes it, none), Auto-Rig
  Pro (from its documented names, not checked against a real file), Unreal/UE mannequin (`upperarm_l`), VRoid
  (`J_Bip_L_UpperArm`), DAZ Genesis 3/8 (`lShldrBend`) and Character Creator (`CC_Base_L_Upperarm`) from their
  public naming tables (not checked against real files here);
- the chain structure for every joint a table leaves out, and for all other rigs (`upperarm.l`, `UpperArmL`,
  `Left…` words, COLLADA `arm_joint_L`, unnamed bones);
- eye, ear and nose bones by name (descendants of the head only; controllers never);
- nose, eyes and ears a rig has no bones for, from the head's geometry (face_points.py).

Hands (21 points each, OpenPose order) come from finger bones: the tables' names, else finger words (thumb,
index, middle/mid, ring, pinky/little) under the forearm, skipping palm and metacarpal bones. The 70 face points
are not mapped: no rig here has a standard set of face bones that matches the 68+2 face landmarks.
"""

from __future__ import annotations

from mathutils import Vector

from . import face_points, rig_structure
from .rig_tables import BODY_POINTS, FACE_POINTS, HEAD, RIG_TABLES, lookup, table_prefixes

# A character counts when its map has the neck and at least this many of the 18 body points.
USABLE_POINTS = 8
LIMB_POINTS = tuple(p for p in BODY_POINTS if p not in FACE_POINTS)


# --- names of face bones ------------------------------------------------------------------------------------

_FACE_WORDS = {"eye": "eye", "eyeball": "eye", "ear": "ear", "nose": "nose"}
# Not the eye itself, though named after it: lids, brows, lashes, targets, sockets.
_NOT_THE_EYE = {
    "lid",
    "brow",
    "lash",
    "eyelid",
    "eyebrow",
    "eyelash",
    "socket",
    "lookat",
    "look",
    "aim",
    "upper",
    "lower",
    "top",
    "bottom",
    "end",
    "tip",
    "corner",
    "inner",
    "outer",
}


def name_part(name: str) -> tuple[str, str | None] | None:
    """(face part, side) a bone name stands for, e.g. "eye.L" -> ("eye", "left"); None for any other bone."""
    if rig_structure.is_mechanism(name):
        return None
    found = rig_structure.words(name)
    if _NOT_THE_EYE & set(found) or "twist" in found:
        return None
    part = next((_FACE_WORDS[w] for w in found if w in _FACE_WORDS), None)
    if part is None:
        return None
    if part == "nose":
        return part, None
    side = rig_structure.side_of(name)
    return (part, side) if side else None


def _face_bones(armature, head_bone) -> dict:
    """{face point: (bone, "head")} for the eye, ear and nose bones under the head (the one nearest the head)."""
    found = {}
    for bone in armature.bones[head_bone].children_recursive:
        guess = name_part(bone.name)
        if guess is None:
            continue
        point = guess[0] if guess[1] is None else f"{guess[1]}_{guess[0]}"
        rank = (not bone.use_deform, len(bone.parent_recursive), len(bone.name))
        if point not in found or rank < found[point][0]:
            found[point] = (rank, bone.name)
    return {point: (name, "head") for point, (_rank, name) in found.items()}


# --- maps ---------------------------------------------------------------------------------------------------


def assess(armature) -> dict:
    """What the automatic map is made of: {"kind", "map" ({point or HEAD: entry}, no face estimates),
    "humanoid", "why" (for a refused rig), "axes" ((up, forward, left) in armature space or None), "table"}."""
    names = set(armature.bones.keys())
    best_kind, best = None, {}
    vrm = _vrm_map(armature)
    if vrm:
        best_kind, best = "VRM humanoid", vrm
    for kind, (table, _hands, _p) in RIG_TABLES.items():
        found = lookup(table, names, table_prefixes(kind, names))
        if _limb_count(found) > _limb_count(best):
            best_kind, best = kind, found
    structure = rig_structure.analyse(armature)
    table_complete = _limb_count(best) >= len(LIMB_POINTS) - 1
    humanoid = structure["humanoid"] or (table_complete and not structure["definite"])
    if not humanoid:
        return {
            "kind": "Not a person",
            "map": {},
            "humanoid": False,
            "axes": None,
            "table": None,
            "why": f"{_owner_name(armature)} {structure['why']}: no pose is read from it unless its bones "
            f"are picked by hand in the Bone Map",
        }
    mapping = dict(structure.get("map", {}))
    if table_complete or (best_kind and _limb_count(best) >= 6):
        mapping.update(best)  # the rig's own names win over the structure
    kind = best_kind if table_complete else "Bone chains"
    head = mapping.get(HEAD)
    if head is not None:
        for point, entry in _face_bones(armature, head[0]).items():
            mapping.setdefault(point, entry)
    axes = structure.get("axes") or _axes_from_map(armature, mapping)
    return {
        "kind": kind,
        "map": mapping,
        "humanoid": True,
        "why": "",
        "axes": axes,
        "table": best_kind if best else None,
    }


def automatic(armature) -> tuple[str, dict]:
    """(rig kind, {point or HEAD: (bone, end)}) for an Armature datablock, before face estimates."""
    found = assess(armature)
    return found["kind"], found["map"]


def _limb_count(mapping) -> int:
    return sum(1 for p in LIMB_POINTS if p in mapping)


def _body_count(mapping) -> int:
    return sum(1 for p in BODY_POINTS if p in mapping)


def _owner_name(armature) -> str:
    obj = rig_structure.owner(armature)
    return obj.name if obj is not None else armature.name


def _axes_from_map(armature, mapping):
    """(up, forward, left) from the shoulders (else hips) and the scene's up, for a rig read from a table."""
    obj = rig_structure.owner(armature)
    up = Vector((0.0, 0.0, 1.0))
    if obj is not None:
        up = (obj.matrix_world.to_3x3().inverted() @ up).normalized()
    for a, b in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")):
        if a in mapping and b in mapping:
            left = rest_point(armature, mapping[a]) - rest_point(armature, mapping[b])
            left -= up * left.dot(up)
            if left.length > 0:
                left.normalize()
                return up, left.cross(up), left
    return None


# VRM's humanoid bone names (VRM 0.x and 1.0) for the points; read from the VRM add-on's data when it is there.
_VRM_BONES = {
    "neck": "neck",
    HEAD: "head",
    "shoulder": "UpperArm",
    "elbow": "LowerArm",
    "wrist": "Hand",
    "hip": "UpperLeg",
    "knee": "LowerLeg",
    "ankle": "Foot",
    "eye": "Eye",
}


def _vrm_map(armature) -> dict:
    """The VRM file's own humanoid map where an importer kept it (the VRM add-on's `vrm_addon_extension`);
    Blender's own glTF importer drops the VRM extension, so VRoid names are read from the VRoid table instead."""
    extension = getattr(armature, "vrm_addon_extension", None)
    try:
        human_bones = extension.vrm0.humanoid.human_bones
        pairs = {hb.bone: hb.node.bone_name for hb in human_bones}
    except AttributeError:
        return {}
    out = {}
    for point, vrm in _VRM_BONES.items():
        for side, key in ((None, vrm[0].lower() + vrm[1:]), ("left", "left" + vrm), ("right", "right" + vrm)):
            name = pairs.get(key)
            if name and name in armature.bones:
                target = point if side is None else f"{side}_{point}"
                if target in BODY_POINTS or target == HEAD:
                    out[target] = (name, "head")
    return out


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
    """The 18-point map (and HEAD) used for capture: the custom picks win, then the automatic map, then face
    points from the head's geometry. `auto`: assess(armature) when already known. A refused rig: picks only."""
    found = auto if isinstance(auto, dict) else assess(armature)
    mapping = dict(found["map"])
    mapping.update(custom(armature))
    head = mapping.get(HEAD)
    if head is not None and any(p not in mapping for p in FACE_POINTS):
        axes = found["axes"] or _axes_from_map(armature, mapping)
        if axes is not None:
            for point, offset in face_points.estimate(armature, mapping, head[0], axes).items():
                mapping.setdefault(point, (head[0], offset))
    return mapping


def hand_maps(armature, auto=None, mapping=None) -> dict:
    """{"left": {21 points}, "right": {...}} for the hands whose finger bones the rig has (a wrist and a finger)."""
    found = auto if isinstance(auto, dict) else assess(armature)
    if not found["humanoid"]:
        return {}
    mapping = mapping or found["map"]
    names = set(armature.bones.keys())
    hands = {}
    kind = found["table"] if found["kind"] == found["table"] else None
    tables = RIG_TABLES[kind][1] if kind in RIG_TABLES else None
    for side in ("left", "right"):
        if tables is not None:
            hand = lookup(tables[side], names, table_prefixes(kind, names))
        else:
            hand = _finger_words(armature, mapping.get(f"{side}_wrist"))
        if "wrist" in hand and len(hand) >= 5:
            hands[side] = hand
    return hands


_FINGER_NAMES = {
    "thumb": "thumb",
    "index": "index",
    "middle": "middle",
    "mid": "middle",
    "ring": "ring",
    "pinky": "pinky",
    "little": "pinky",
    "pinkie": "pinky",
}


def _finger_words(armature, wrist) -> dict:
    """A hand from finger names under the forearm: per finger its bones from the palm out (palm, metacarpal and
    carpal bones left out), OpenPose points 1-3 at their heads and 4 at the last bone's end."""
    if wrist is None or wrist[1] != "head":
        return {}
    hand_bone = armature.bones[wrist[0]]
    above = hand_bone.parent or hand_bone
    fingers = {}
    for bone in above.children_recursive:
        found = rig_structure.words(bone.name)
        if rig_structure.is_mechanism(bone.name) or {"palm", "metacarpal", "carpal", "twist"} & set(found):
            continue
        finger = next((_FINGER_NAMES[w] for w in found if w in _FINGER_NAMES), None)
        if finger is not None:
            fingers.setdefault(finger, []).append(bone)
    hand = {"wrist": wrist}
    for finger, bones in fingers.items():
        bones.sort(key=lambda b: len(b.parent_recursive))
        chain = [(b.name, "head") for b in bones[:4]]
        if len(chain) < 4:
            end = rig_structure.leaf_end(armature, bones[len(chain) - 1])
            for i, entry in enumerate(chain):
                hand[f"{finger}_{i + 1}"] = entry
            if end is not None:
                hand[f"{finger}_4"] = end
        else:
            for i, entry in enumerate(chain):
                hand[f"{finger}_{i + 1}"] = entry
    return hand


def rest_point(armature, entry) -> Vector:
    """A map entry's point in armature space at rest."""
    return rig_structure.entry_point(armature, entry)


def pose_point(pose_bones, entry) -> Vector:
    """A map entry's point in armature space in the current (evaluated) pose."""
    pbone = pose_bones[entry[0]]
    end = entry[1]
    if isinstance(end, str):
        return (pbone.head if end == "head" else pbone.tail).copy()
    return pbone.matrix @ end


def report(armature) -> dict:
    """What the panel shows: the rig kind, whether it is a person (and why not), the body points mapped (with
    their bones), missing, estimated from the head's shape, picked by hand, and the hands."""
    found = assess(armature)
    mapping = body_map(armature, found)
    picked = custom(armature)
    return {
        "kind": found["kind"],
        "humanoid": found["humanoid"],
        "why": found["why"],
        "mapped": {p: mapping[p][0] for p in BODY_POINTS if p in mapping},
        "missing": [p for p in BODY_POINTS if p not in mapping],
        "estimated": [
            p for p in FACE_POINTS if p in mapping and p not in picked and not isinstance(mapping[p][1], str)
        ],
        "custom": sorted(picked),
        "automatic": {p: found["map"][p][0] for p in BODY_POINTS + (HEAD,) if p in found["map"]},
        "hands": sorted(hand_maps(armature, found)),
        "usable": usable(mapping),
    }


def usable(mapping) -> bool:
    return "neck" in mapping and _body_count(mapping) >= USABLE_POINTS
