"""The extension as a user gets it: built by Blender's own tool, installed from the zip, driven through its
operators headless, against the real server subprocess on tiny models."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from conftest import TOKEN

from cli import extension as extension_cli

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0

PACKAGE = extension_cli.PACKAGE


def scene_with_camera(tmp_path, frames=4, size=64, steps=3):
    bpy.ops.wm.read_homefile(use_empty=True)  # not read_factory_settings: that would disable the extension
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, frames
    bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 0, 0))
    bpy.ops.mesh.primitive_cube_add(size=1, location=(0, 0, 0.5))
    bpy.ops.object.camera_add(location=(0, -6, 2.5), rotation=(1.2, 0, 0))
    scene.camera = bpy.context.object
    settings = scene.marionette
    settings.output_dir = str(tmp_path / "out")
    settings.long_side = size
    settings.steps = steps
    settings.use_depth, settings.use_normal = True, True
    settings.lora_zoom_in = 0.5
    return scene


def point_at(extension, url, token=TOKEN):
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.server_url, prefs.token = url, token
    return prefs


def settings_fingerprint(scene):
    r = scene.render
    return (
        r.engine,
        r.filepath,
        r.resolution_x,
        scene.frame_current,
        scene.camera.name,
        len(scene.view_layers[0].depsgraph.objects),
        scene.view_layers[0].use_pass_z,
        scene.view_layers[0].use_pass_normal,
    )


def test_generate_headless_writes_every_frame_and_wires_the_compositor(extension, tiny_server, tmp_path):
    scene = scene_with_camera(tmp_path)
    point_at(extension, tiny_server.url)
    before = settings_fingerprint(scene)
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    runtime = bpy.context.window_manager.marionette
    job_dir = Path(runtime.job_dir)
    frames = sorted(job_dir.glob("frame_*.png"))
    assert [f.name for f in frames] == [f"frame_{i:04d}.png" for i in range(1, 5)]
    assert runtime.frames_received == 4 and runtime.progress == pytest.approx(1.0) and not runtime.error
    assert sorted(p.name for p in (job_dir / "guides").glob("depth_*.png"))[:1] == ["depth_0001.png"]
    images = [i for i in bpy.data.images if i.source == "SEQUENCE"]
    assert len(images) == 1 and Path(bpy.path.abspath(images[0].filepath)) == frames[0]
    tree = sys.modules[f"{PACKAGE}.backend.compositing"].compositor_tree(scene, create=False)
    nodes = [n for n in tree.nodes if n.bl_idname == "CompositorNodeImage" and n.image == images[0]]
    assert len(nodes) == 1 and nodes[0].outputs[0].is_linked
    assert bpy.data.images["Marionette Preview"].size[0] > 0, "the step previews reach Blender"
    assert settings_fingerprint(scene) == before


def test_frames_out_of_order_or_sent_again_land_in_order(extension, tmp_path):
    """The operator's message handling: one import per tick, of the unbroken run of frames from the first; a
    frame that comes early waits for the ones before it, one sent again (a resumed stream) counts once."""
    scene = scene_with_camera(tmp_path)
    settings = scene.marionette
    settings.import_compositor, settings.import_sequencer, settings.import_camera_background = True, True, False
    generate = sys.modules[f"{PACKAGE}.operators.generate"]
    Generation = sys.modules[f"{PACKAGE}.backend.generation"].Generation
    spec = SimpleNamespace(frames=5, steps=2, frame_start=3, camera_motion="manual")
    job = Generation(None, spec, tmp_path / "job")
    job.out_dir.mkdir()
    png = sys.modules[f"{PACKAGE}.backend.png"]
    runtime = bpy.context.window_manager.marionette
    runtime.frames_received = 0

    def arrive(*indices):
        for i in indices:
            png.write_png(job.out_dir / f"frame_{i + 1:04d}.png", np.full((4, 4, 3), 40 * i, np.uint8))
        generate.apply_messages(bpy.context, job, [("frame", {"index": i}) for i in indices])
        tree = sys.modules[f"{PACKAGE}.backend.compositing"].compositor_tree(scene, create=False)
        [node] = [n for n in tree.nodes if n.get("marionette") == "image"] if tree else [None]
        [strip] = [s for s in scene.sequence_editor.strips_all if s.get("marionette")] if node else [None]
        return (
            runtime.frames_received,
            node and node.frame_duration,
            strip and [e.filename for e in strip.elements],
        )

    assert arrive(1) == (1, None, None)  # frame_0002 before frame_0001: nothing to show yet
    assert arrive(0, 3) == (3, 2, ["frame_0001.png", "frame_0002.png"])
    assert arrive(1, 2) == (4, 4, [f"frame_{i:04d}.png" for i in range(1, 5)])  # frame_0002 again
    assert arrive(4) == (5, 5, [f"frame_{i:04d}.png" for i in range(1, 6)])
    [strip] = [s for s in scene.sequence_editor.strips_all if s.get("marionette")]
    assert strip.frame_final_start == 3


def test_running_twice_replaces_what_the_last_run_made(extension, tiny_server, tmp_path):
    scene_with_camera(tmp_path)
    point_at(extension, tiny_server.url)
    bpy.ops.marionette.generate()
    bpy.ops.marionette.generate()
    assert len([i for i in bpy.data.images if i.source == "SEQUENCE"]) == 1


def test_cancel_mid_run_keeps_what_arrived(extension, tiny_server, tmp_path):
    """Cancel once the first frames have arrived (the server checks cancel after each step and each decoded
    frame): the job ends cancelled, and every frame received before stays on disk and in the image sequence."""
    frames = 16
    scene_with_camera(tmp_path, frames=frames, size=256, steps=1)
    point_at(extension, tiny_server.url)
    generate = sys.modules[f"{PACKAGE}.operators.generate"]
    previous = generate._active

    def press_cancel_after_the_first_frame():  # what the Cancel button does, from the artist's side
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            active = generate._active
            if active is not previous and (active.out_dir / "frame_0001.png").exists():
                active.generation.cancel()
                return
            time.sleep(0.005)

    threading.Thread(target=press_cancel_after_the_first_frame, daemon=True).start()
    assert bpy.ops.marionette.generate() == {"CANCELLED"}
    runtime = bpy.context.window_manager.marionette
    received = runtime.frames_received
    assert 1 <= received < frames, received
    assert runtime.status.startswith(f"Cancelled; {received} frames kept") and not runtime.running
    kept = sorted(p.name for p in Path(runtime.job_dir).glob("frame_*.png"))
    assert kept == [f"frame_{i:04d}.png" for i in range(1, received + 1)]
    png = sys.modules[f"{PACKAGE}.backend.png"]
    assert all(png.read_png(Path(runtime.job_dir) / name).shape[:2] == (256, 256) for name in kept)
    sequence = [i for i in bpy.data.images if i.source == "SEQUENCE"]
    assert len(sequence) == 1 and Path(bpy.path.abspath(sequence[0].filepath)).name == "frame_0001.png"


def test_server_down_is_a_clear_error_and_nothing_changes(extension, tmp_path):
    scene = scene_with_camera(tmp_path)
    point_at(extension, "http://127.0.0.1:9")
    before = settings_fingerprint(scene)
    with pytest.raises(RuntimeError, match="cannot reach the Marionette server"):
        bpy.ops.marionette.generate()
    runtime = bpy.context.window_manager.marionette
    assert "cannot reach" in runtime.error and "server log" in runtime.error and not runtime.running
    assert settings_fingerprint(scene) == before


def test_no_camera_says_what_to_do(extension, tiny_server, tmp_path):
    scene = scene_with_camera(tmp_path)
    scene.camera = None
    point_at(extension, tiny_server.url)
    with pytest.raises(RuntimeError, match="no active camera"):
        bpy.ops.marionette.generate()


def test_too_many_frames_for_the_motion_module_is_reported(extension, tiny_server, tmp_path):
    scene = scene_with_camera(tmp_path, frames=40, size=64)
    scene.marionette.use_context = False
    point_at(extension, tiny_server.url)
    with pytest.raises(RuntimeError, match="more than the motion module"):
        bpy.ops.marionette.generate()


def test_runtime_state_is_not_saved_into_the_blend(extension, tmp_path):
    scene_with_camera(tmp_path)
    bpy.context.window_manager.marionette.status = "Step 3/25"
    bpy.context.scene.marionette.prompt = "kept"
    bpy.context.scene.marionette.vae = "vae-ft-mse"
    path = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    assert bpy.context.scene.marionette.prompt == "kept"
    assert bpy.context.scene.marionette.vae == "vae-ft-mse"
    assert bpy.context.window_manager.marionette.status == "Idle"


def test_a_spec_the_server_would_refuse_never_leaves_blender(extension, tmp_path):
    """The add-on checks its JobSpec with the protocol's own parse_spec before preflight: two prompt markers on one
    frame are refused by field name, before any server is asked (none is running at this URL)."""
    scene = scene_with_camera(tmp_path, frames=4)
    scene.marionette.prompts_from_markers = True
    scene.timeline_markers.new("a red ball", frame=2)
    scene.timeline_markers.new("a blue cube", frame=2)
    point_at(extension, "http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match=r"prompts\[1\]\.frame: frame 1 has two prompts"):
        bpy.ops.marionette.generate()
    assert bpy.context.window_manager.marionette.error == ""  # nothing was sent, so no connection error either


def test_long_looping_clip_with_prompts_from_markers(extension, tiny_server, tmp_path):
    scene = scene_with_camera(tmp_path, frames=20, steps=2)
    scene.marionette.loop = True
    scene.marionette.prompts_from_markers = True
    scene.timeline_markers.new("a red ball", frame=1)
    scene.timeline_markers.new("long", frame=15)
    bpy.data.texts.new("long").write("a blue cube on a long wooden table")
    point_at(extension, tiny_server.url)
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    spec = sys.modules[f"{PACKAGE}.operators.generate"]._active.spec
    wire = spec.to_dict()
    assert wire["context"] == {
        "length": 16,
        "overlap": 4,
        "loop": True,
        "fuse": "pyramid",
        "mode": "temporal",
        "motion_scales": [],
    }
    assert wire["prompts"] == [
        {"frame": 0, "prompt": "a red ball"},
        {"frame": 14, "prompt": "a blue cube on a long wooden table"},
    ]
    assert len(list(Path(bpy.context.window_manager.marionette.job_dir).glob("frame_*.png"))) == 20


def test_the_log_buttons_say_when_there_is_no_log_yet(extension, capfd):
    """Open Install Log and Open Server Log (one way to open a log) name what has not happened yet."""
    user = Path(bpy.utils.extension_path_user(PACKAGE, create=True))
    assert not [
        p for p in (user / "install.log", user / "server" / "server.log", user / "server" / "console.log") if p.exists()
    ]
    assert bpy.ops.marionette.open_install_log() == {"CANCELLED"}
    assert bpy.ops.marionette.open_server_log() == {"CANCELLED"}
    printed = capfd.readouterr()
    assert (
        "there is no install log" in printed.out + printed.err and "there is no server log" in printed.out + printed.err
    )
