"""Put a scene back exactly as it was after a capture changed its render settings.

Design: the capture renders the user's own scene in place, changing only settings (engine, samples, passes, output
format, ...), never data: it adds no nodes, objects or view layers. So a snapshot of settings is enough, and it is
exact: `preserved` records every writable plain value (numbers, booleans, strings, enums, arrays) of the settings
structs a capture can touch, and on exit sets back each value that differs. A temporary scene copy would also have
to duplicate the compositor, view layers and add-on data, so it is not simpler. Pointer and collection properties
(curve mappings, node trees) are not touched by captures and are not recorded; the compositor is never edited, only
the post-processing toggle `render.use_compositing` is switched off while guides render.

Not restorable by settings alone: the 'Render Result' image shows the last capture render, as after F12.
"""

from __future__ import annotations

from contextlib import contextmanager

from .compositing import compositor_is_node_group

# Restored first: the values allowed for the other format settings depend on them.
_FIRST = ("media_type", "file_format")


def _plain(value):
    return tuple(value) if hasattr(value, "__len__") and not isinstance(value, (str, set)) else value


def _writable(struct):
    for prop in struct.bl_rna.properties:
        if prop.identifier != "rna_type" and not prop.is_readonly and prop.type not in ("POINTER", "COLLECTION"):
            yield prop.identifier


def _structs(scene):
    """Every settings struct a capture may change; add-on settings (Cycles) only where registered."""
    found = [scene.render, scene.render.image_settings, scene.view_settings, scene.display_settings]
    if hasattr(scene, "cycles"):
        found.append(scene.cycles)
    for layer in scene.view_layers:
        found.append(layer)
        if hasattr(layer, "cycles"):
            found.append(layer.cycles)
    return found


def snapshot(scene) -> tuple[list, dict]:
    """([(struct, {name: value})], {scene's own frame, camera and compositor use}) for `scene`."""
    settings = [
        (struct, {name: _plain(getattr(struct, name)) for name in _writable(struct)}) for struct in _structs(scene)
    ]
    own = {"frame_current": scene.frame_current, "frame_subframe": scene.frame_subframe, "camera": scene.camera}
    if not compositor_is_node_group():  # 5.0 keeps `use_nodes` only as a deprecated switch that is always on
        own["use_nodes"] = scene.use_nodes
    return settings, own


def restore(scene, saved) -> None:
    """Set back every recorded value that differs now. Raises RuntimeError naming any value that would not go back."""
    settings, own = saved
    failed = []
    for struct, values in settings:
        names = sorted(values, key=lambda name: name not in _FIRST)
        for name in names:
            if _plain(getattr(struct, name)) != values[name]:
                try:
                    setattr(struct, name, values[name])
                except (AttributeError, TypeError, ValueError) as error:
                    failed.append(f"{struct.bl_rna.identifier}.{name}: {error}")
    if "use_nodes" in own and scene.use_nodes != own["use_nodes"]:
        scene.use_nodes = own["use_nodes"]
    # frame_set re-evaluates the scene at the old frame; it may switch cameras by markers, so the camera goes last.
    scene.frame_set(own["frame_current"], subframe=own["frame_subframe"])
    scene.camera = own["camera"]
    if failed:
        raise RuntimeError("could not restore scene settings: " + "; ".join(failed))


@contextmanager
def preserved(scene):
    """Run a block that changes render settings of `scene`; they are restored on exit, also on an exception."""
    saved = snapshot(scene)
    try:
        yield scene
    finally:
        restore(scene, saved)
