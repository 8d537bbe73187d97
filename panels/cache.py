"""Panel data too expensive for every redraw, recomputed only when the file's data changes.

`version` goes up on every depsgraph update and file load; `per_version` keeps one value per key until then. Rig
reports are keyed by what they depend on (bone names, the hand-picked map), so a redraw while a job runs or the
timeline plays reuses them.
"""

import bpy
from bpy.app.handlers import persistent

from ..backend import rigs

_version = 0
_values: dict = {}
_reports: dict = {}


def per_version(key, compute):
    hit = _values.get(key)
    if hit is not None and hit[0] == _version:
        return hit[1]
    value = compute()
    _values[key] = (_version, value)
    return value


def settings_key(scene) -> tuple:
    """What the estimate depends on besides the scene's objects (changing a setting may not update the depsgraph
    in every session, e.g. headless)."""
    s, r = scene.marionette, scene.render
    plain = tuple(
        getattr(s, p.identifier)
        for p in s.bl_rna.properties
        if p.type in {"BOOLEAN", "INT", "FLOAT", "STRING", "ENUM"} and not getattr(p, "is_array", False)
    )
    return (
        scene.name_full,
        plain,
        tuple(k.frame for k in s.keyframes),
        tuple(item.name for item in s.loras),
        tuple(
            (r.source, r.image_path, bool(r.subject or r.subject_collection), r.whole_clip, r.first, r.last)
            for r in s.references
        ),
        scene.frame_start,
        scene.frame_end,
        r.resolution_x,
        r.resolution_y,
        r.pixel_aspect_x,
        r.pixel_aspect_y,
        scene.camera.name if scene.camera else None,
    )


def _armature_key(armature) -> tuple:
    picks = armature.marionette_pose
    mapped = tuple(getattr(picks, p) + getattr(picks, f"{p}_end") for p in rigs.BODY_POINTS + (rigs.HEAD,))
    return armature.name_full, tuple(b.name for b in armature.bones), mapped


def rig_report(armature) -> dict:
    """`rigs.report(armature)`, computed again only when its bones or hand-picked map change."""
    key = _armature_key(armature)
    hit = _reports.get(armature.name_full)
    if hit is None or hit[0] != key:
        hit = (key, rigs.report(armature))
        _reports[armature.name_full] = hit
    return hit[1]


@persistent
def bump(*_args):
    global _version
    _version += 1


def register():
    bpy.app.handlers.depsgraph_update_post.append(bump)
    bpy.app.handlers.load_post.append(bump)


def unregister():
    for handlers in (bpy.app.handlers.depsgraph_update_post, bpy.app.handlers.load_post):
        if bump in handlers:
            handlers.remove(bump)
    _values.clear()
    _reports.clear()
