"""Which objects the final render shows: what may hide a keypoint, and which characters are captured.

Ray casts see the viewport's depsgraph, which leaves out what is hidden in the viewport only (monitor or eye
icon); `revealed` shows those that render for the time of a capture.

An object is in the render when it is not hidden in renders and not left out of the camera's view (Object ▸
Visibility ▸ Camera, holdout), and at least one collection it is in is reached from the scene's collection through
collections that are neither excluded from the view layer, disabled in renders, holdout nor indirect-only.
"""

from __future__ import annotations

from contextlib import contextmanager


def rendered_collections(view_layer) -> set[str]:
    """Names of the collections whose objects the view layer renders (the scene collection included)."""
    out = set()

    def walk(layer_collection, on):
        collection = layer_collection.collection
        on = on and not (
            layer_collection.exclude
            or collection.hide_render
            or layer_collection.holdout
            or layer_collection.indirect_only
        )
        if on:
            out.add(collection.name)
        for child in layer_collection.children:
            walk(child, on)

    root = view_layer.layer_collection
    out.add(root.collection.name)
    for child in root.children:
        walk(child, True)
    return out


def in_render(obj, collections: set[str]) -> bool:
    """Whether the render shows `obj` (an original or evaluated object) given rendered_collections()."""
    obj = getattr(obj, "original", obj) or obj
    if obj.hide_render or getattr(obj, "is_holdout", False) or not getattr(obj, "visible_camera", True):
        return False
    # an instanced object is judged by the collections it lives in, not by the instancer's
    return not obj.users_collection or any(c.name in collections for c in obj.users_collection)


@contextmanager
def revealed(scene, view_layer):
    """Show in the viewport, for the duration, whatever renders but is hidden in the viewport; then restore."""
    collections = rendered_collections(view_layer)
    undo = []

    def walk(layer_collection):
        collection = layer_collection.collection
        if collection.name in collections:
            if collection.hide_viewport:
                undo.append((collection, "hide_viewport", True))
                collection.hide_viewport = False
            if layer_collection.hide_viewport:
                undo.append((layer_collection, "hide_viewport", True))
                layer_collection.hide_viewport = False
        for child in layer_collection.children:
            walk(child)

    try:
        for child in view_layer.layer_collection.children:
            walk(child)
        for obj in view_layer.objects:
            if not in_render(obj, collections):
                continue
            if obj.hide_viewport:
                undo.append((obj, "hide_viewport", True))
                obj.hide_viewport = False
            if obj.hide_get(view_layer=view_layer):
                undo.append((obj, None, view_layer))
                obj.hide_set(False, view_layer=view_layer)
        yield
    finally:
        for thing, attribute, value in reversed(undo):
            if attribute is None:
                thing.hide_set(True, view_layer=value)
            else:
                setattr(thing, attribute, value)
