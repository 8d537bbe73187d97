"""Which objects are "the character": a collection's objects, or an object with its hierarchy (children at any
depth and, for an armature, the meshes it deforms). Used for the batch's alpha and for reference renders."""

from __future__ import annotations

from contextlib import contextmanager

import bpy

GEOMETRY = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME"}


def subject_objects(obj=None, collection=None) -> list:
    """The geometry of `collection` (a Collection) or else of `obj` and its hierarchy; ValueError when none."""
    if collection is not None:
        objects = list(collection.all_objects)
        what = f"collection {collection.name!r}"
    elif obj is not None:
        objects = [obj, *obj.children_recursive]
        if obj.type == "ARMATURE":
            objects += [
                o
                for o in bpy.data.objects
                if o.type == "MESH"
                and o not in objects
                and any(m.type == "ARMATURE" and m.object == obj for m in o.modifiers)
            ]
        what = f"{obj.type.lower()} {obj.name!r}"
    else:
        raise ValueError("choose the character: an object or a collection")
    objects = [o for o in objects if o.type in GEOMETRY]
    if not objects:
        raise ValueError(f"{what} has no mesh")
    return objects


@contextmanager
def alone(scene, objects, keep_types=()):
    """Hide from the render every object of `scene` but `objects` (and those of `keep_types`, e.g. lights) for the
    block; exactly the objects hidden here are shown again afterwards, also on an exception."""
    keep = {o.name for o in objects}
    hidden = [o for o in scene.objects if o.name not in keep and o.type not in keep_types and not o.hide_render]
    try:
        for o in hidden:
            o.hide_render = True
        yield hidden
    finally:
        for o in hidden:
            o.hide_render = False
