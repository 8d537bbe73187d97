"""What the N-panel shows of results: frames look as their PNGs under AgX in the compositor and the sequencer
while F12 renders the scene as before, and Match camera shows its windows and plot before any job."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from panel_driver import draw_all, ext, labels, runtime
from test_extension import point_at, scene_with_camera

from backend.png import read_png, write_png

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0


def test_frames_display_as_their_pngs_under_agx_and_f12_is_unchanged(extension, tmp_path):
    scene = scene_with_camera(tmp_path, frames=1, size=64)
    assert scene.view_settings.view_transform == "AgX"
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.image_settings.file_format = "PNG"
    before = render(scene, tmp_path / "before.png")
    frame = natural_frame(64)
    folder = tmp_path / "frames"
    folder.mkdir()
    write_png(folder / "frame_0001.png", frame)
    s = scene.marionette
    s.import_sequencer = True
    assert bpy.ops.marionette.import_result(directory=str(folder)) == {"FINISHED"}
    scene.render.use_sequencer = False
    assert np.array_equal(render(scene, tmp_path / "after.png"), before), "F12 renders the scene as before"
    # the compositor: with Replace render ticked F12 shows the frames, as they look in their PNG
    s.replace_render = True
    bpy.ops.marionette.import_result(directory=str(folder))
    shown = render(scene, tmp_path / "replaced.png")
    compositor_error = np.abs(shown.astype(int) - frame.astype(int)).mean()
    assert compositor_error <= 1.0, compositor_error
    assert bpy.ops.marionette.restore_render() == {"FINISHED"}
    assert np.array_equal(render(scene, tmp_path / "restored.png"), before), "one click undoes it"
    # the sequencer
    scene.render.use_sequencer = True
    scene.render.use_compositing = False
    shown = render(scene, tmp_path / "sequencer.png")
    sequencer_error = np.abs(shown.astype(int) - frame.astype(int)).mean()
    assert sequencer_error <= 1.0, sequencer_error
    print(f"mean |delta| under AgX: compositor {compositor_error:.3f}/255, sequencer {sequencer_error:.3f}/255")


def natural_frame(size):
    """A smooth frame with the moderate saturation of generated frames (hue across, value down)."""
    import colorsys

    out = np.zeros((size, size, 3), np.uint8)
    for y in range(size):
        for x in range(size):
            rgb = colorsys.hsv_to_rgb(x / size, 0.7 * (0.3 + 0.7 * y / size), 0.9 * (0.2 + 0.8 * (1 - y / size)))
            out[y, x] = [round(c * 255) for c in rgb]
    return out


def render(scene, path):
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return read_png(path)[..., :3]


def test_match_camera_shows_windows_and_the_plot_before_any_job(extension, tiny_server, tmp_path):
    scene = scene_with_camera(tmp_path, frames=24, size=64)
    cam = scene.camera
    cam.keyframe_insert("location", frame=1)
    cam.location.x += 3
    cam.keyframe_insert("location", frame=24)
    scene.marionette.camera_motion = "auto"
    point_at(extension, tiny_server.url)
    assert bpy.ops.marionette.match_camera() == {"FINISHED"}
    r = runtime()
    assert r.camera_match and r.camera_windows.startswith("frames 1-")
    assert bpy.data.images[ext("operators.camera_match").PLOT_IMAGE].size[0] > 0
    log = draw_all()
    assert ("operator", "marionette.match_camera") in log and any(t.startswith("frames 1-") for t in labels(log))
    cam.location.z += 1
    bpy.context.view_layer.update()
    assert r.camera_stale
