"""Bring a generated frame sequence (<folder>/frame_0001.png, frame_0002.png, …) into Blender.

One Image datablock (source SEQUENCE) is shared by every target: the compositor, the sequencer and the camera
background. Everything this module creates is tagged so that a second import (more frames arrived, or a new job)
updates it in place instead of adding another copy, and so that nothing the artist made is touched.

Frame mapping: scene frame `frame_start` shows frame_0001.png, `frame_start + count - 1` shows the last frame.

"Over the render" (compositor, `over_render=True`): an Alpha Over node with the Render Layers image as background
and the generated frames as foreground. Its factor starts at 1.0 (the generated frame covers the render, since
the frames are opaque); the artist lowers it to see the render through. A later import keeps the factor the
artist set.

The compositor's result (what F12 renders) is changed only with `replace_render=True`: the socket that fed the
result before is remembered on the tree, and `restore_render` links it back (one click in the panel). Without it the
frames go to Marionette's Viewer node only, so F12 renders exactly what it rendered before the import.

Colour: a PNG frame holds display values. Blender shows an image by converting it from its colour space to scene
linear and then applying the scene's view transform (AgX by default) — so an sRGB-tagged PNG is shown through AgX a
second time and looks washed out. `display_colorspace(scene)` names the colour space the scene's view transform
outputs on its display ("AgX Base sRGB" for AgX on sRGB, "sRGB" for Standard...); tagged with it, the frames go
through the inverse of the view and then the view again, and display as their PNGs do in the Image Editor, the
compositor and the sequencer (docs/ARCHITECTURE.md, "Frames look as they are").

Blender 4.2–4.5 keep the compositor in `scene.node_tree` with a Composite node; Blender 5.0 made it a node group
(`scene.compositing_node_group`) whose Group Output is the result. `compositor_is_node_group()` tells them apart;
only `compositor_tree()`, `compositor_output()` and `scene_state` (which skips 5.0's no-op `use_nodes`) use it.
"""

from __future__ import annotations

import os

import bpy

from .frame_files import TAG, blend_path, check_frame_start, check_frames, display_colorspace
from .protocol import frame_filename
from .sequencer import place_in_sequencer

TARGETS = {"COMPOSITOR", "SEQUENCER", "CAMERA_BACKGROUND"}


# ---------------------------------------------------------------------------------------------------------------
# The image


def load_sequence(folder, count, name="Marionette", scene=None) -> bpy.types.Image:
    """Create or update the Image datablock `name` as a sequence starting at frame_0001.png.

    The frame mapping lives in each image user (the compositor node, the camera background), not in the image;
    `count` is kept on the image so that `wire_compositor` can use it. More frames of the sequence it already
    shows (a job streaming in) change nothing here: its image users never asked for a frame past the old count,
    so no frame needs reading again. Anything else (another folder, the same or fewer frames: the files may have
    changed) reloads every frame from disk.
    """
    folder = check_frames(folder, count)
    first = os.path.join(folder, frame_filename(0))
    path, colorspace = blend_path(first), display_colorspace(scene or bpy.context.scene)
    image = bpy.data.images.get(name)
    if image is None:
        image = bpy.data.images.load(first, check_existing=False)
        image.name = name
    grows = (
        image.get(TAG)
        and image.source == "SEQUENCE"
        and image.filepath == path
        and image.colorspace_settings.name == colorspace
        and count > int(image.get(TAG + "_count", 0))
    )
    # Each of these assignments drops the cached frames and reads the current one again, even with an equal value.
    if image.source != "SEQUENCE":
        image.source = "SEQUENCE"
    if image.filepath != path:
        image.filepath = path
    if image.colorspace_settings.name != colorspace:
        image.colorspace_settings.name = colorspace
    image[TAG] = True
    image[TAG + "_count"] = int(count)
    if not grows:
        image.reload()
    return image


def _set_image_user(user, frame_start, count):
    """Scene frame `frame_start` shows frame_0001; `user` is an ImageUser or a Compositor Image node."""
    user.frame_duration = int(count)
    user.frame_start = int(frame_start)
    user.frame_offset = 0
    user.use_cyclic = False
    user.use_auto_refresh = True


# ---------------------------------------------------------------------------------------------------------------
# Compositor


def compositor_is_node_group() -> bool:
    """Blender 5.0+: the compositor is a node group the scene points at, and its Group Output is the result."""
    return "compositing_node_group" in bpy.types.Scene.bl_rna.properties


def compositor_tree(scene, create=True):
    """The scene's compositor node tree (None when it has none and `create` is False).

    A new tree starts as Blender's own new compositor does (`use_nodes` in 4.x, New in 5.0): Render Layers
    feeding the result.
    """
    if compositor_is_node_group():
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new(f"{scene.name} Compositing", "CompositorNodeTree")
            render = tree.nodes.new("CompositorNodeRLayers")
            render.location = (-300, 0)
            tree.links.new(render.outputs["Image"], compositor_output(tree))
            scene.compositing_node_group = tree
        return tree
    if create:
        scene.use_nodes = True  # creates scene.node_tree (Render Layers → Composite) on first use
    return scene.node_tree


def compositor_output(tree):
    """The input socket that is the compositor's result: the Composite node's (4.x) or the Group Output's (5.0+)."""
    if not compositor_is_node_group():
        node = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
        if node is None:
            node = tree.nodes.new("CompositorNodeComposite")
            node.location = (600, 0)
        return node.inputs["Image"]
    # The group's first output socket is the composited image; a new tree has none yet.
    if not any(item.item_type == "SOCKET" and item.in_out == "OUTPUT" for item in tree.interface.items_tree):
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    outputs = [n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"]
    node = next((n for n in outputs if n.is_active_output), outputs[0] if outputs else None)
    if node is None:
        node = tree.nodes.new("NodeGroupOutput")
        node.location = (600, 0)
    return node.inputs[0]


def _alpha_over_sockets(node):
    """(factor, background, foreground): 5.0 names them, 4.x has "Fac" and two inputs named "Image"."""
    inputs = node.inputs
    if inputs.get("Foreground") is not None:
        return inputs["Factor"], inputs["Background"], inputs["Foreground"]
    return inputs["Fac"], inputs[1], inputs[2]


def _owned(tree, role):
    return [n for n in tree.nodes if n.get(TAG) == role]


def _ensure_node(tree, role, bl_idname, location):
    """The one node of `role` this module made in `tree` (extra copies removed), created when missing."""
    nodes = _owned(tree, role)
    for extra in nodes[1:]:
        tree.nodes.remove(extra)
    if nodes:
        return nodes[0]
    node = tree.nodes.new(bl_idname)
    node[TAG] = role
    node.name = node.label = "Marionette" if role == "image" else f"Marionette {role.title()}"
    node.location = location
    return node


def _remove_owned(tree, role):
    for node in _owned(tree, role):
        tree.nodes.remove(node)


def _link(tree, from_socket, to_socket):
    """Link once; an input takes one link, so this also replaces whatever fed `to_socket` before."""
    if not any(link.from_socket == from_socket for link in to_socket.links):
        tree.links.new(from_socket, to_socket)


def _render_layers(tree, scene):
    """The artist's Render Layers node for this scene if there is one (left as it is), else one of ours."""
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeRLayers" and node.get(TAG) is None and node.scene in (None, scene):
            _remove_owned(tree, "render")
            return node
    node = _ensure_node(tree, "render", "CompositorNodeRLayers", (-300, 300))
    node.scene = scene
    return node


def wire_compositor(scene, image, over_render=False, frame_start=None, count=None, replace_render=False):
    """Show `image` in Marionette's Viewer, optionally over the render, and with `replace_render` also as the
    compositor's result (see the module doc).

    `frame_start` defaults to the scene's first frame, `count` to the count `load_sequence` stored on the image.
    Returns the Image node.
    """
    frame_start = scene.frame_start if frame_start is None else frame_start
    count = int(image.get(TAG + "_count", 1)) if count is None else count
    tree = compositor_tree(scene)
    output = compositor_output(tree)
    x, y = output.node.location

    frames = _ensure_node(tree, "image", "CompositorNodeImage", (x - 500, y - 150))
    frames.image = image
    _set_image_user(frames, frame_start, count)
    result = frames.outputs["Image"]

    if over_render:
        over = _ensure_node(tree, "over", "CompositorNodeAlphaOver", (x - 200, y))
        factor, background, foreground = _alpha_over_sockets(over)
        _link(tree, _render_layers(tree, scene).outputs["Image"], background)
        _link(tree, result, foreground)
        result = over.outputs["Image"]
    else:
        _remove_owned(tree, "over")
        _remove_owned(tree, "render")

    viewer = _ensure_node(tree, "viewer", "CompositorNodeViewer", (x, y - 250))
    _link(tree, result, viewer.inputs["Image"])
    tree.nodes.active = viewer  # the active Viewer is the one the backdrop and Image Editor show
    if replace_render:
        if _PREVIOUS not in tree:
            link = next(iter(output.links), None)
            tree[_PREVIOUS] = [link.from_node.name, link.from_socket.identifier] if link else []
        _link(tree, result, output)
        if not scene.render.use_compositing:
            tree[_PREVIOUS + "_compositing"] = True
            scene.render.use_compositing = True
    else:
        restore_render(scene)
    return frames


_PREVIOUS = TAG + "_replaced"  # on the tree: [node name, socket identifier] that fed the result before


def replaces_render(scene) -> bool:
    tree = compositor_tree(scene, create=False)
    return tree is not None and _PREVIOUS in tree


def restore_render(scene) -> bool:
    """Undo `replace_render`: the result is fed again by what fed it before (nothing, if nothing did)."""
    tree = compositor_tree(scene, create=False)
    if tree is None or _PREVIOUS not in tree:
        return False
    output = compositor_output(tree)
    previous = list(tree[_PREVIOUS])
    for link in list(output.links):
        tree.links.remove(link)
    if previous:
        node = tree.nodes.get(previous[0])
        socket = next((s for s in node.outputs if s.identifier == previous[1]), None) if node else None
        if socket is not None:
            tree.links.new(socket, output)
    if tree.get(_PREVIOUS + "_compositing"):
        scene.render.use_compositing = False
        del tree[_PREVIOUS + "_compositing"]
    del tree[_PREVIOUS]
    return True


# ---------------------------------------------------------------------------------------------------------------
# Camera background


def set_camera_background(camera_obj, image, frame_start, count):
    """Show `image` as the camera's background image, updating the entry a previous import made."""
    if camera_obj is None or camera_obj.type != "CAMERA":
        raise ValueError("The camera background needs a camera object: set the scene camera first.")
    camera = camera_obj.data
    # Background entries take no custom properties: ours is the one showing the Marionette image.
    ours = [bg for bg in camera.background_images if bg.image == image]
    for extra in ours[1:]:
        camera.background_images.remove(extra)
    background = ours[0] if ours else camera.background_images.new()
    background.source = "IMAGE"
    background.image = image
    background.show_background_image = True
    _set_image_user(background.image_user, frame_start, count)
    camera.show_background_images = True
    return background


# ---------------------------------------------------------------------------------------------------------------
# Entry point


def import_result(
    scene,
    folder,
    count,
    frame_start,
    targets=frozenset({"COMPOSITOR"}),
    over_render=False,
    name="Marionette",
    replace_render=False,
) -> bpy.types.Image:
    """Load the frames and show them in each of `targets` (COMPOSITOR, SEQUENCER, CAMERA_BACKGROUND).

    Safe to call again as more frames arrive: everything is updated in place. Bad input raises ValueError
    before anything changes.
    """
    targets = set(targets)
    unknown = targets - TARGETS
    if unknown or not targets:
        raise ValueError(f"Targets must be some of {sorted(TARGETS)}, got {sorted(targets) or 'none'}.")
    folder = check_frames(folder, count)
    check_frame_start(frame_start)
    if "CAMERA_BACKGROUND" in targets and (scene.camera is None or scene.camera.type != "CAMERA"):
        raise ValueError(
            f"Scene {scene.name!r} has no camera for the camera background: "
            "set Scene Properties ▸ Camera, or leave out CAMERA_BACKGROUND."
        )

    image = load_sequence(folder, count, name, scene)
    if "COMPOSITOR" in targets:
        wire_compositor(scene, image, over_render, frame_start, count, replace_render)
    if "SEQUENCER" in targets:
        place_in_sequencer(scene, folder, count, frame_start)
    if "CAMERA_BACKGROUND" in targets:
        set_camera_background(scene.camera, image, frame_start, count)
    return image
