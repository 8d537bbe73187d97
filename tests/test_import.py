"""backend/compositing.py on real bpy: generated frames into the compositor, the sequencer and the camera background."""

from __future__ import annotations

import os
import struct
import zlib

import bpy  # a missing bpy is a collection error, never a skip
import pytest

from backend import compositing, sequencer  # noqa: E402

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0

RED, GREEN, BLUE, WHITE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (255, 255, 0)


def write_png(path, rgb, size=4):
    """A solid-colour 8-bit RGB PNG, standard library only."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + body)


def write_frames(folder, colours, first=1):
    os.makedirs(folder, exist_ok=True)
    for i, rgb in enumerate(colours, first):
        write_png(os.path.join(folder, f"frame_{i:04d}.png"), rgb)
    return str(folder)


@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 4
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"  # so a rendered pixel equals the file's pixel
    scene.render.dither_intensity = 0.0
    scene.render.engine = "CYCLES"  # renders headless on the CPU
    scene.cycles.samples = 1
    return scene


def add_camera(scene):
    obj = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(obj)
    scene.camera = obj
    return obj


def rendered_rgb(scene, frame, tmp_path):
    """The composited pixel at `frame`, through a real render, saved and read back."""
    if scene.camera is None:
        add_camera(scene)
    scene.frame_set(frame)
    bpy.ops.render.render()
    path = str(tmp_path / f"render_{frame}.png")
    bpy.data.images["Render Result"].save_render(path)
    image = bpy.data.images.load(path)
    rgb = tuple(round(v * 255) for v in image.pixels[:3])
    bpy.data.images.remove(image)
    return rgb


def owned(tree, role):
    return [n for n in tree.nodes if n.get("marionette") == role]


def composite_input(tree):
    """The compositor's result: the Composite node's input (4.x) or the active Group Output's first input (5.0)."""
    return next(
        n.inputs[0]
        for n in tree.nodes
        if n.bl_idname == "CompositorNodeComposite" or (n.bl_idname == "NodeGroupOutput" and n.is_active_output)
    )


def feeder(socket):
    assert len(socket.links) == 1, f"{socket.node.name}.{socket.name} has {len(socket.links)} links"
    return socket.links[0].from_node


def assert_no_duplicate_links(tree):
    keys = [(k.from_node.name, k.from_socket.identifier, k.to_node.name, k.to_socket.identifier) for k in tree.links]
    assert len(keys) == len(set(keys)), keys


def marionette_strips(scene):
    return [s for s in sequencer.strips_of(scene.sequence_editor) if s.get("marionette")]


def add_colour_strip(editor, name, frame_start, frame_end):
    """An artist's colour strip on channel 1; 5.0's new_effect takes a `length` where 4.x took `frame_end`."""
    strips = sequencer.strips_of(editor)
    if "length" in strips.bl_rna.functions["new_effect"].parameters:
        return strips.new_effect(name, "COLOR", 1, frame_start=frame_start, length=frame_end - frame_start)
    return strips.new_effect(name, "COLOR", 1, frame_start=frame_start, frame_end=frame_end)


def test_compositor_shows_each_frame_at_its_scene_frame(scene, tmp_path):
    folder = write_frames(tmp_path / "frames", [RED, GREEN, BLUE])
    image = compositing.import_result(scene, folder, 3, frame_start=5, replace_render=True)

    assert image.source == "SEQUENCE"
    assert os.path.samefile(bpy.path.abspath(image.filepath), os.path.join(folder, "frame_0001.png"))
    tree = compositing.compositor_tree(scene, create=False)
    [node] = owned(tree, "image")
    assert node.image == image
    assert (node.frame_duration, node.frame_start, node.frame_offset) == (3, 5, 0)
    assert feeder(composite_input(tree)) == node
    assert feeder(owned(tree, "viewer")[0].inputs["Image"]) == node

    # Scene frame 5 is frame_0001 (red), 6 green, 7 blue; the last frame holds after the end.
    assert [rendered_rgb(scene, f, tmp_path) for f in (5, 6, 7, 8)] == [RED, GREEN, BLUE, BLUE]


def test_reimport_updates_in_place_and_picks_up_new_frames(scene, tmp_path):
    folder = write_frames(tmp_path / "frames", [RED, GREEN, BLUE])
    camera = add_camera(scene)
    artist_bg = camera.data.background_images.new()
    tree = compositing.compositor_tree(scene)
    blur = tree.nodes.new("CompositorNodeBlur")
    blur.name = "Artist Blur"
    render_layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
    tree.links.new(render_layers.outputs["Image"], blur.inputs["Image"])
    editor = scene.sequence_editor_create()
    artist_strip = add_colour_strip(editor, "Artist Colour", 1, 50)
    everything = {"COMPOSITOR", "SEQUENCER", "CAMERA_BACKGROUND"}

    for _ in range(2):
        compositing.import_result(scene, folder, 3, 1, targets=everything, over_render=True, replace_render=True)
    # More frames arrived while the job ran on.
    write_frames(tmp_path / "frames", [WHITE, YELLOW], first=4)
    image = compositing.import_result(scene, folder, 5, 1, targets=everything, over_render=True, replace_render=True)

    assert [i.name for i in bpy.data.images if i.name.startswith("Marionette")] == ["Marionette"]
    assert [len(owned(tree, role)) for role in ("image", "over", "viewer")] == [1, 1, 1]
    assert owned(tree, "render") == []  # the artist's Render Layers node was used, not a second one
    assert_no_duplicate_links(tree)
    assert "Artist Blur" in tree.nodes and feeder(tree.nodes["Artist Blur"].inputs["Image"]) == render_layers
    assert owned(tree, "image")[0].frame_duration == 5

    [strip] = marionette_strips(scene)
    assert (strip.frame_final_start, strip.frame_final_duration) == (1, 5)
    assert artist_strip.name in sequencer.strips_of(editor)
    assert strip.channel != artist_strip.channel

    ours = [bg for bg in camera.data.background_images if bg.image == image]
    assert len(ours) == 1 and ours[0].image_user.frame_duration == 5
    assert len(camera.data.background_images) == 2 and artist_bg.image is None

    compositing.import_result(scene, folder, 5, 1, replace_render=True)  # compositor only, replacing the render
    assert owned(tree, "over") == [] and feeder(composite_input(tree)) == owned(tree, "image")[0]
    assert "Artist Blur" in tree.nodes and render_layers.name in tree.nodes
    scene.render.use_sequencer = False  # the strip would cover the compositor's result in the render
    assert rendered_rgb(scene, 5, tmp_path) == YELLOW  # frame_0005, written after the first import


def test_frames_arriving_one_by_one_extend_what_shows_them(scene, tmp_path):
    """A streaming job: each import adds the frames that arrived to the same image, node, strip and background
    (nothing rebuilt, no frame read again), and every frame shows at its scene frame in both the compositor and
    the sequencer, also where an earlier render looked before that frame existed."""
    colours = [RED, GREEN, BLUE, WHITE, YELLOW]
    camera = add_camera(scene)
    everything = {"COMPOSITOR", "SEQUENCER", "CAMERA_BACKGROUND"}
    folder = tmp_path / "frames"
    made = None
    for count in (1, 3, 4, 5):  # one frame, two in one tick, then one at a time
        write_frames(folder, colours[:count])
        image = compositing.import_result(scene, str(folder), count, 1, targets=everything, replace_render=True)
        tree = compositing.compositor_tree(scene, create=False)
        [node], [strip] = owned(tree, "image"), marionette_strips(scene)
        [background] = [bg for bg in camera.data.background_images if bg.image == image]
        ours = (image.as_pointer(), node.as_pointer(), strip.as_pointer(), background.as_pointer())
        assert made in (None, ours), "extended in place, not rebuilt"
        made = ours
        assert node.frame_duration == background.image_user.frame_duration == count
        assert [e.filename for e in strip.elements] == [f"frame_{i:04d}.png" for i in range(1, count + 1)]
        assert (strip.frame_final_start, strip.frame_final_duration) == (1, count)
        # The newest frame, in the sequencer (it covers the render) and then the compositor alone; the scene
        # frame after it was rendered too while it did not exist yet.
        scene.render.use_sequencer = True
        assert rendered_rgb(scene, count, tmp_path) == colours[count - 1]
        scene.render.use_sequencer = False
        assert rendered_rgb(scene, count, tmp_path) == colours[count - 1]
        assert rendered_rgb(scene, count + 1, tmp_path) == colours[count - 1]  # the last frame holds
    for target in (True, False):
        scene.render.use_sequencer = target
        assert [rendered_rgb(scene, f, tmp_path) for f in range(1, 6)] == colours

    # Another job's folder: everything points at the new frames, read from disk.
    other = write_frames(tmp_path / "other", [BLUE, RED])
    compositing.import_result(scene, other, 2, 1, targets=everything, replace_render=True)
    [strip] = marionette_strips(scene)
    assert [e.filename for e in strip.elements] == ["frame_0001.png", "frame_0002.png"]
    assert os.path.samefile(bpy.path.abspath(strip.directory), other)
    assert owned(tree, "image")[0].frame_duration == 2
    for target in (True, False):
        scene.render.use_sequencer = target
        assert [rendered_rgb(scene, f, tmp_path) for f in (1, 2)] == [BLUE, RED]


def test_an_extended_strip_never_covers_an_artists_strip(scene, tmp_path):
    folder = write_frames(tmp_path / "frames", [RED, GREEN])
    first = sequencer.place_in_sequencer(scene, folder, 1, frame_start=1)
    artist = add_colour_strip(scene.sequence_editor, "Artist Colour", 2, 10)
    artist.channel = first.channel
    strip = sequencer.place_in_sequencer(scene, folder, 2, frame_start=1)
    assert strip.channel != artist.channel and strip.frame_final_duration == 2
    assert [s.name for s in marionette_strips(scene)] == [strip.name]


def test_over_render_puts_frames_over_the_render_with_a_factor_the_artist_keeps(scene, tmp_path):
    folder = write_frames(tmp_path / "frames", [RED, GREEN])
    tree = compositing.compositor_tree(scene)
    for node in list(tree.nodes):
        tree.nodes.remove(node)  # no Render Layers of the artist's: Marionette brings its own

    compositing.import_result(scene, folder, 2, 1, over_render=True, replace_render=True)
    [over], [frames], [render] = owned(tree, "over"), owned(tree, "image"), owned(tree, "render")
    factor, background, foreground = compositing._alpha_over_sockets(over)
    assert feeder(background) == render and render.bl_idname == "CompositorNodeRLayers"
    assert feeder(foreground) == frames
    assert feeder(composite_input(tree)) == over
    assert factor.default_value == 1.0

    factor.default_value = 0.25
    compositing.import_result(scene, folder, 2, 1, over_render=True, replace_render=True)
    assert owned(tree, "over") == [over] and compositing._alpha_over_sockets(over)[0].default_value == 0.25
    assert_no_duplicate_links(tree)


def test_sequencer_strip_spans_count_frames_from_frame_start(scene, tmp_path):
    folder = write_frames(tmp_path / "frames", [RED, GREEN, BLUE])
    strip = sequencer.place_in_sequencer(scene, folder, 3, frame_start=10)
    assert (strip.frame_final_start, strip.frame_final_end, strip.frame_final_duration) == (10, 13, 3)
    assert [e.filename for e in strip.elements] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    assert os.path.samefile(bpy.path.abspath(strip.directory), folder)
    scene.frame_start, scene.frame_end = 10, 12
    assert rendered_rgb(scene, 11, tmp_path) == GREEN


def test_camera_background_shows_the_sequence(scene, tmp_path):
    folder = write_frames(tmp_path / "frames", [RED, GREEN])
    camera = add_camera(scene)
    image = compositing.import_result(scene, folder, 2, 3, targets={"CAMERA_BACKGROUND"})
    [bg] = camera.data.background_images
    assert camera.data.show_background_images and bg.show_background_image
    assert bg.source == "IMAGE" and bg.image == image and image.source == "SEQUENCE"
    user = bg.image_user
    assert (user.frame_duration, user.frame_start, user.frame_offset) == (2, 3, 0)
    assert compositing.compositor_tree(scene, create=False) is None  # only the asked-for target changed


def strip_count(scene):
    return len(sequencer.strips_of(scene.sequence_editor)) if scene.sequence_editor else 0


def scene_state(scene):
    tree = compositing.compositor_tree(scene, create=False)
    cameras = [len(c.background_images) for c in bpy.data.cameras]
    return (
        len(bpy.data.images),
        len(bpy.data.node_groups),
        scene.use_nodes,
        tree and len(tree.nodes),
        strip_count(scene),
        cameras,
    )


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing folder", "does not exist"),
        ("no frames", "missing"),
        ("count beyond the frames", "frames are missing"),
        ("zero count", "No frames to import"),
        ("negative count", "at least 1"),
        ("no camera", "no camera"),
        ("unknown target", "Targets must be"),
    ],
)
def test_bad_input_raises_and_changes_nothing(scene, tmp_path, case, message):
    folder = write_frames(tmp_path / "frames", [RED, GREEN])
    os.makedirs(tmp_path / "empty")
    args = {
        "missing folder": (str(tmp_path / "nope"), 2, {"COMPOSITOR"}),
        "no frames": (str(tmp_path / "empty"), 1, {"COMPOSITOR"}),
        "count beyond the frames": (folder, 3, {"COMPOSITOR", "SEQUENCER"}),
        "zero count": (folder, 0, {"COMPOSITOR"}),
        "negative count": (folder, -2, {"COMPOSITOR"}),
        "no camera": (folder, 2, {"COMPOSITOR", "CAMERA_BACKGROUND"}),
        "unknown target": (folder, 2, {"COMPOSITOR", "TIMELINE"}),
    }[case]
    before = scene_state(scene)
    with pytest.raises(ValueError, match=message):
        compositing.import_result(scene, args[0], args[1], 1, targets=args[2])
    assert scene_state(scene) == before


def test_each_step_checks_its_input_too(scene, tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(ValueError, match="does not exist"):
        compositing.load_sequence(missing, 2)
    with pytest.raises(ValueError, match="does not exist"):
        sequencer.place_in_sequencer(scene, missing, 2, 1)
    with pytest.raises(ValueError, match="camera"):
        compositing.set_camera_background(None, None, 1, 2)
    assert len(bpy.data.images) == 0 and strip_count(scene) == 0


def test_setup_survives_save_and_reload_with_relative_paths(scene, tmp_path):
    blend = str(tmp_path / "shot.blend")
    add_camera(scene)
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    folder = write_frames(tmp_path / "jobs" / "frames", [RED, GREEN, BLUE])
    everything = {"COMPOSITOR", "SEQUENCER", "CAMERA_BACKGROUND"}
    image = compositing.import_result(bpy.context.scene, folder, 3, 1, targets=everything, replace_render=True)
    assert image.filepath == "//jobs/frames/frame_0001.png"
    bpy.ops.wm.save_mainfile()

    bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
    scene = bpy.context.scene
    image = bpy.data.images["Marionette"]
    assert image.source == "SEQUENCE" and image.filepath == "//jobs/frames/frame_0001.png"
    tree = compositing.compositor_tree(scene, create=False)
    [node] = owned(tree, "image")
    assert node.image == image and node.frame_duration == 3 and feeder(composite_input(tree)) == node
    [strip] = marionette_strips(scene)
    assert strip.directory == "//jobs/frames/" and strip.frame_final_duration == 3
    assert scene.camera.data.background_images[0].image == image

    # The tags survived too: importing again still updates in place.
    compositing.import_result(scene, folder, 3, 1, targets=everything, replace_render=True)
    assert len(owned(tree, "image")) == 1 and len(marionette_strips(scene)) == 1
    assert len(scene.camera.data.background_images) == 1
    scene.render.use_sequencer = False  # render the compositor's result, not the strip
    assert rendered_rgb(scene, 2, tmp_path) == GREEN
