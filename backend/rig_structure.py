"""Is an armature a person, and where are its joints: read from the chains of its deforming bones, not their names.

A humanoid (upright in its rest pose): below a pelvis bone hang exactly two leg chains that reach the ground; one
chain rises from it (the spine) and does not itself reach the ground (a quadruped's front legs would); two arm
chains branch off the spine to either side. Joints are the heads of the chain bones (imported bones have made-up
lengths, so a bone's tail is only trusted where something says where the bone ends): shoulder/elbow/wrist and
hip/knee/ankle are the three joints around the two longest consecutive segments of each limb.

Bones that are not anatomy never take part: when a rig has deforming bones only those count, and IK/FK
controllers, poles, targets, mechanism and helper bones, and secondary bones (hair, skirt, cloth) are skipped by
name. Left and right come from the bone names where they say so, else from the character's facing (its toes).
"""

from __future__ import annotations

import re

import bpy
from mathutils import Vector

# Name words of bones that are never joints of the body.
MECHANISM = {
    "ik",
    "fk",
    "pole",
    "target",
    "tgt",
    "ctrl",
    "ctl",
    "mch",
    "wgt",
    "helper",
    "roll",
    "ref",
    "tweak",
    "vis",
    "snap",
    "socket",
    "master",
    "lock",
    "track",
    "null",
    "proxy",
    "controller",
    "control",
    "gizmo",
    "prop",
    "weapon",
    "attach",
    "sec",
    "hair",
    "skirt",
    "bust",
    "breast",
    "cloth",
    "cape",
    "coat",
    "tie",
    "ribbon",
    "acc",
    "accessory",
    "spring",
    "jiggle",
    "physics",
    "dyn",
    "dynamic",
}
MECHANISM_PREFIXES = ("MCH-", "WGT-", "VIS", "CTRL", "C_", "CTL", "IK", "FK")
SIDES = ("left", "right")


def words(name: str) -> list[str]:
    """Lower-case words of a bone name: split at separators, digits and camelCase humps ("UpperArmL" -> upper arm l)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z])([A-Z][a-z])", r"\1 \2", spaced)
    return [w for w in re.split(r"[^a-z]+", spaced.lower()) if w]


def side_of(name: str) -> str | None:
    """The side a bone name says: Left/Right words, L/R words or suffixes (".L", "_l", "UpperArmL", "J_Bip_L_")."""
    found = words(name)
    if "left" in found or "l" in found:
        return "left"
    if "right" in found or "r" in found:
        return "right"
    return None


def is_mechanism(name: str) -> bool:
    return (
        name.upper().startswith(MECHANISM_PREFIXES)
        and not name.upper().startswith(("CC_", "IKS"))
        or bool(MECHANISM & set(words(name)))
    )


def owner(armature):
    """The first object using this Armature datablock (None when it has none)."""
    if isinstance(armature, bpy.types.Object):
        return armature
    return next((o for o in bpy.data.objects if o.type == "ARMATURE" and o.data == armature), None)


def body_bones(armature) -> list:
    """The bones that can be joints: deforming ones (all when none deform), without controllers and helpers."""
    bones = [b for b in armature.bones if b.use_deform] or list(armature.bones)
    return [b for b in bones if not is_mechanism(b.name)]


def leaf_end(armature, bone):
    """Where a bone with no body child ends, as an entry (bone, end), or None when nothing says so.

    An importer leaves a bone's length made up; an empty parented to the bone (glTF's `<bone>_end` node) says
    where it ends, and a tail is trusted in a rig built in Blender. Either only when its distance from the bone's
    head is in proportion to the parent's segment (some exporters write end nodes far off).
    """
    segment = (bone.head_local - bone.parent.head_local).length if bone.parent is not None else 0.0

    def in_proportion(length):
        return segment > 0 and 0.2 < length / segment < 5.0

    obj = owner(armature)
    if obj is not None:
        marks = [
            c
            for c in obj.children
            if c.parent_type == "BONE" and c.parent_bone == bone.name and c.type == "EMPTY" and not c.children
        ]
        if marks:
            posed = obj.matrix_world @ obj.pose.bones[bone.name].matrix
            frame = posed.inverted()
            local = max((frame @ m.matrix_world.translation for m in marks), key=lambda v: v.length)
            return (bone.name, local) if in_proportion(local.length) else None
    if in_proportion(bone.length):
        return bone.name, "tail"
    return None


def entry_point(armature, entry) -> Vector:
    bone = armature.bones[entry[0]]
    if isinstance(entry[1], str):
        return (bone.head_local if entry[1] == "head" else bone.tail_local).copy()
    return bone.matrix_local @ entry[1]


class Refused(Exception):
    """Not a person: the message says why, for the panel. `definite`: the structure says so (a quadruped, not
    upright), rather than that it could not be read (then a rig table that maps every joint may still be taken)."""

    def __init__(self, why: str, definite: bool = True):
        super().__init__(why)
        self.why, self.definite = why, definite


def analyse(armature) -> dict:
    """{"humanoid": True, "map": {point: entry}, "head_bone", "arms"/"legs": {side: [bone names]}, "axes": (up,
    forward, left) in armature space} or {"humanoid": False, "why": str, "definite": bool}."""
    try:
        return _analyse(armature)
    except Refused as refused:
        return {"humanoid": False, "why": refused.why, "definite": refused.definite}


def _analyse(armature) -> dict:
    bones = body_bones(armature)
    if len(bones) < 9:
        raise Refused("has too few deforming bones for a body", definite=False)
    names = {b.name for b in bones}
    parent, children = {}, {b.name: [] for b in bones}
    for b in bones:
        p = b.parent
        while p is not None and p.name not in names:
            p = p.parent
        parent[b.name] = p.name if p else None
        if p:
            children[p.name].append(b.name)
    obj = owner(armature)
    up = Vector((0.0, 0.0, 1.0))
    if obj is not None:
        up = (obj.matrix_world.to_3x3().inverted() @ up).normalized()
    ends = {n: leaf_end(armature, armature.bones[n]) for n in names if not children[n]}
    points = {n: [armature.bones[n].head_local.copy()] for n in names}
    for n, e in ends.items():
        if e is not None:
            points[n].append(entry_point(armature, e))

    subtree = {}

    def collect(n):
        if n not in subtree:
            out = list(points[n])
            for c in children[n]:
                out += collect(c)
            subtree[n] = out
        return subtree[n]

    def height(v):
        return v.dot(up)

    roots = [n for n in names if parent[n] is None]
    node = max(roots, key=lambda r: len(collect(r)))
    size = {}

    def count(n):
        if n not in size:
            size[n] = 1 + sum(count(c) for c in children[n])
        return size[n]

    while len([c for c in children[node] if count(c) >= 2]) < 3:
        if not children[node]:
            raise Refused("has no hips: no bone with a spine and two legs below it", definite=False)
        node = max(children[node], key=count)
    pelvis = node
    top_of_hips = height(armature.bones[pelvis].head_local)
    ground = min(height(v) for v in collect(pelvis))
    drop = top_of_hips - ground
    if drop <= 0:
        raise Refused("is not upright: nothing hangs below its hips")

    def lowest(n):
        return min(height(v) for v in collect(n))

    def highest(n):
        return max(height(v) for v in collect(n))

    kids = children[pelvis]
    legs = [k for k in kids if lowest(k) < top_of_hips - 0.6 * drop]
    spine_root = max(kids, key=highest)
    if spine_root in legs:
        raise Refused("looks like a four-legged animal: the limbs in front of its hips reach the ground too")
    if len(legs) != 2:
        raise Refused(f"has {len(legs)} legs below its hips, not two", definite=False)
    spine = [spine_root]
    while children[spine[-1]]:
        spine.append(max(children[spine[-1]], key=highest))
    hips_at = armature.bones[pelvis].head_local
    top = max(collect(spine_root), key=height)
    rise = height(top) - top_of_hips
    sideways = ((top - hips_at) - up * (top - hips_at).dot(up)).length
    if rise < 0.5 * drop or rise < sideways:
        raise Refused("is not upright: its spine does not rise above its hips")

    leg_chains = [_chain(k, children, lambda n: lowest(n), pick=min) for k in legs]
    centres = [sum(collect(k), Vector()) / len(collect(k)) for k in legs]
    lateral = centres[0] - centres[1]
    lateral -= up * lateral.dot(up)
    if lateral.length == 0:
        raise Refused("has its two legs in one place", definite=False)
    lateral.normalize()

    spine_at = {n: i for i, n in enumerate(spine)}
    arms = []
    for i, n in enumerate(spine[:-1]):
        for k in children[n]:
            if k in spine_at:
                continue
            reach = max(((v - hips_at).dot(lateral) for v in collect(k)), key=abs)
            if lowest(k) > top_of_hips - 0.6 * drop and abs(reach) > 0.3 * drop:
                arms.append((reach, i, k))
    plus = max((a for a in arms if a[0] > 0), default=None)
    minus = min((a for a in arms if a[0] < 0), default=None)
    if plus is None or minus is None:
        raise Refused("has no two arms branching off its spine", definite=False)
    attach = max(plus[1], minus[1])
    neck = spine[min(attach + 1, len(spine) - 1)]
    after = spine[spine.index(neck) + 1 :]
    head = next((n for n in after if "head" in words(n) and not {"top", "end"} & set(words(n))), None)
    head = head or (after[0] if after and (children[after[0]] or len(after) == 1) else neck)

    arm_chains = [
        _chain(k, children, lambda n, k=k: max((v - armature.bones[k].head_local).length for v in collect(n)), pick=max)
        for k in (plus[2], minus[2])
    ]
    limbs = []
    for part, chain in (("arm", arm_chains[0]), ("arm", arm_chains[1]), ("leg", leg_chains[0]), ("leg", leg_chains[1])):
        joints = [(n, "head") for n in chain]
        if ends.get(chain[-1]) is not None:
            joints.append(ends[chain[-1]])
        if len(joints) < 3:
            raise Refused(f"has an {part} chain with fewer than three joints ({chain[0]})", definite=False)
        where = [entry_point(armature, j) for j in joints]
        segments = [(where[i + 1] - where[i]).length for i in range(len(where) - 1)]
        i = max(range(len(segments) - 1), key=lambda i: segments[i] + segments[i + 1])
        limbs.append((part, chain, joints, where, i))
    front = Vector((0.0, -1.0, 0.0))
    if obj is not None:
        front = obj.matrix_world.to_3x3().inverted() @ front
    forward = _forward([(where, i) for part, _c, _j, where, i in limbs if part == "leg"], up, front)
    left = up.cross(forward).normalized()
    mapping = {"neck": (neck, "head"), "head": (head, "head")}
    sides = {}
    for part, chain, joints, where, i in limbs:
        side = _side(chain, where, hips_at, left)
        sides.setdefault(part, set()).add(side)
        names_ = ("shoulder", "elbow", "wrist") if part == "arm" else ("hip", "knee", "ankle")
        for point, joint in zip(names_, joints[i : i + 3]):
            mapping[f"{side}_{point}"] = joint
        sides[(part, side)] = chain
    if sides["arm"] != {"left", "right"} or sides["leg"] != {"left", "right"}:
        raise Refused("has limbs whose sides cannot be told apart", definite=False)
    return {
        "humanoid": True,
        "map": mapping,
        "head_bone": head,
        "neck_bone": neck,
        "arms": {s: sides[("arm", s)] for s in SIDES},
        "legs": {s: sides[("leg", s)] for s in SIDES},
        "axes": (up, forward, left),
    }


def _chain(start, children, score, pick) -> list[str]:
    chain = [start]
    while children[chain[-1]]:
        chain.append(pick(children[chain[-1]], key=score))
    return chain


def _side(chain, where, hips_at, left) -> str:
    """The names' side when they agree on one, else the side the limb lies on."""
    said = {side_of(n) for n in chain} - {None}
    if len(said) == 1:
        return said.pop()
    return "left" if (sum(where, Vector()) / len(where) - hips_at).dot(left) > 0 else "right"


def _forward(legs, up, front) -> Vector:
    """The way the character faces: where its toes point from its ankles, else `front` (Blender's front view,
    world -Y, in armature space)."""
    total = Vector()
    for where, i in legs:
        if len(where) > i + 3:
            step = where[i + 3] - where[i + 2]
            total += step - up * step.dot(up)
    if total.length < 1e-6:
        total = front - up * front.dot(up)
    return total.normalized()
