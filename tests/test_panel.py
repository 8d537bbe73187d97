"""The N-panel as artists use it, through the installed extension and the real tiny server: pickers and lists,
a capture that yields between frames, the generation size and refusals, results that stay, frames that look as
their PNGs, the camera match before a job, and the lifecycle across files. Every sub-panel's draw code runs in
every state through a recording layout that checks each property and operator it names."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import extension  # noqa: F401 - the session's installed extension
from test_extension import PACKAGE, point_at, scene_with_camera

from backend.png import read_png, write_png

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0


def ext(module):
    return sys.modules[f"{PACKAGE}.{module}"]


def runtime():
    return bpy.context.window_manager.marionette


def tick_until(run, done, limit=300.0):
    """Drive the run as Blender's timer would; returns the tick durations."""
    ticks, deadline = [], time.monotonic() + limit
    while not done() and time.monotonic() < deadline:
        t = time.perf_counter()
        run.tick(bpy.context)
        ticks.append(time.perf_counter() - t)
        time.sleep(0.005)
    assert done(), "the run did not get there in time"
    return ticks


def start_run():
    assert bpy.ops.marionette.generate(wait=False) == {"FINISHED"}
    return ext("operators.generate")._active


# --- a recording layout: the draw functions run as in Blender, every name they use is checked ------------------


class Recorder:
    def __init__(self, log):
        self.log = log
        self.enabled = self.active = self.alert = True
        self.scale_y = 1.0

    def _child(self, *args, **kwargs):
        return Recorder(self.log)

    row = column = box = split = column_flow = grid_flow = _child

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{data.bl_rna.identifier} has no property {name!r}"
        self.log.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.log.append(("prop_search", name))

    def operator(self, idname, **kwargs):
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name) and getattr(getattr(bpy.ops, category), name).idname(), idname
        self.log.append(("operator", idname))
        return OperatorProps(getattr(getattr(bpy.ops, category), name).get_rna_type())

    def label(self, text="", **kwargs):
        assert isinstance(text, str)
        self.log.append(("label", text))

    def template_list(self, list_type, list_id, data, prop, active_data, active_prop, **kwargs):
        assert hasattr(bpy.types, list_type), list_type
        assert prop in data.bl_rna.properties and active_prop in active_data.bl_rna.properties
        ui_list = getattr(bpy.types, list_type)
        for index, item in enumerate(getattr(data, prop)):
            ui_list.draw_item(None, bpy.context, Recorder(self.log), data, item, 0, active_data, active_prop, index)
        self.log.append(("list", list_type))

    def progress(self, factor=0.0, text="", **kwargs):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))

    def template_icon(self, icon_value=0, scale=1.0):
        self.log.append(("icon", icon_value))

    def separator(self, **kwargs):
        pass


class OperatorProps:
    def __init__(self, rna):
        self.__dict__["_names"] = set(rna.properties.keys())

    def __setattr__(self, name, value):
        assert name in self._names, f"operator has no property {name!r}"


def draw_all():
    """Draw every Marionette panel whose poll passes; returns the recorded calls."""
    log = []
    for cls in ext("panels").CLASSES:
        if hasattr(cls, "poll") and not cls.poll(bpy.context):
            continue
        panel = type("P", (), {"layout": Recorder(log)})()
        cls.draw(panel, bpy.context)
    return log


def labels(log):
    return [text for kind, text in log if kind == "label"]


def shown(log) -> str:
    """All the panel's text as one string (long messages wrap over several labels)."""
    return " ".join(labels(log))


# --- tests --------------------------------------------------------------------------------------------------------


def test_pickers_fill_from_the_servers_models_and_lists_reach_the_job(extension, tiny_server, tmp_path):
    scene = scene_with_camera(tmp_path, frames=4, size=64, steps=1)
    point_at(extension, tiny_server.url)
    assert bpy.ops.marionette.refresh_models() == {"FINISHED"}
    search = ext("properties")._search
    assert "sd15" in search("base")(scene.marionette, bpy.context, "")
    assert {"v2", "v3"} <= set(search("motion_module")(scene.marionette, bpy.context, ""))
    assert search("lora")(None, bpy.context, "sty") == ["style"]
    assert "depth" in search("controlnet")(None, bpy.context, "")
    assert ext("backend.catalog").motion_info("v3")["version"] == "v3"
    vaes = ext("properties")._search_vae(scene.marionette, bpy.context, "")
    assert vaes[0] == "Checkpoint's own" and {"tiny-ft", "tiny-ft-diffusers"} <= set(vaes)
    assert scene.marionette.vae == ""  # the default: the checkpoint's own
    scene.marionette.vae = "Checkpoint's own"  # picking the first entry stores no name
    assert scene.marionette.vae == ""
    assert Path(ext("operators.paths").catalog_file()).is_file(), "remembered for when the server is offline"

    s = scene.marionette
    scene.render.engine = "BLENDER_WORKBENCH"  # keyframes render with the scene's engine: keep it quick
    s.motion_module = "v3"
    bpy.ops.marionette.lora_add()
    s.loras[0].name = "style"
    bpy.ops.marionette.lora_add()
    bpy.ops.marionette.lora_remove()
    assert [lora.name for lora in s.loras] == ["style"]
    for frame in (3, 1, 3):
        scene.frame_set(frame)
        bpy.ops.marionette.keyframe_add()
    assert [k.frame for k in s.keyframes] == [1, 3]
    s.keyframe_index = 1
    bpy.ops.marionette.keyframe_remove()
    scene.frame_set(4)
    bpy.ops.marionette.keyframe_add()
    assert [k.frame for k in s.keyframes] == [1, 4]
    s.vae = "tiny-ft"
    s.clip_skip = 2
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    spec = ext("operators.generate")._active.spec.to_dict()
    assert spec["clip_skip"] == 2
    assert spec["loras"] == [{"name": "style", "weight": pytest.approx(0.8)}]
    assert spec["vae"] == "tiny-ft"
    assert spec["sparsectrl"]["keyframes"] == [0, 3]
    assert (spec["width"], spec["height"]) == (64, 64)
    manifest = Path(runtime().job_dir)
    assert len(list(manifest.glob("frame_*.png"))) == 4
    log = draw_all()
    assert ("list", "MARIONETTE_UL_loras") in log and ("list", "MARIONETTE_UL_keyframes") in log
    assert ("prop", "vae") in log
    assert ("prop", "clip_skip") in log
    assert any("v3: up to" in t for t in labels(log))


def test_generation_size_keeps_the_aspect_in_multiples_of_8(extension, tmp_path):
    scene = scene_with_camera(tmp_path)
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    s = scene.marionette
    s.long_side = 512
    assert s.generation_size(scene) == (512, 288)
    scene.render.resolution_x, scene.render.resolution_y = 1080, 1920
    assert s.generation_size(scene) == (288, 512)
    scene.render.resolution_x, scene.render.resolution_y = 1000, 1000
    s.long_side = 300
    assert s.generation_size(scene) == (296, 296)


def test_impossible_ranges_are_refused_in_the_panel_and_leave_nothing(extension, tiny_server, tmp_path):
    scene = scene_with_camera(tmp_path, frames=1)
    point_at(extension, tiny_server.url)
    bpy.ops.marionette.refresh_models()
    assert "an animation needs at least 2" in shown(draw_all())
    with pytest.raises(RuntimeError, match="at least 2"):
        bpy.ops.marionette.generate()
    scene.frame_end = 40
    scene.marionette.use_context = False
    assert "more than the motion module" in shown(draw_all())
    with pytest.raises(RuntimeError, match="Tick Context windows"):
        bpy.ops.marionette.generate()
    scene.marionette.use_context = True
    scene.frame_end = 4
    scene.marionette.base = "no-such-checkpoint"  # refused by the server's preflight
    with pytest.raises(RuntimeError):
        bpy.ops.marionette.generate()
    out = tmp_path / "out"
    assert not out.exists() or not any(out.rglob("*")), "refused Generates leave no folders behind"


def test_capture_yields_between_frames_and_cancel_restores_the_scene(extension, tiny_server, tmp_path):
    scene = scene_with_camera(tmp_path, frames=64, size=64, steps=1)
    point_at(extension, tiny_server.url)
    before = ext("backend.scene_state").snapshot(scene)
    values_before = [v for _, v in before[0]], before[1]
    run = start_run()
    ticks = tick_until(run, lambda: run.phase == "capture" and runtime().capture_frame >= 20)
    capture_ticks = ticks[-20:]
    assert runtime().status.startswith("Rendering guides: frame")
    draw_all()  # the running state draws
    assert ("operator", "marionette.cancel") in draw_all()
    bpy.ops.marionette.cancel()
    assert run.done and run.final == "cancelled" and not ext("operators.generate").running()
    after = ext("backend.scene_state").snapshot(scene)
    assert [v for _, v in after[0]] == values_before[0] and after[1] == values_before[1]
    assert ("operator", "marionette.generate") in draw_all()
    # one frame per tick: 20 ticks rendered 20 frames, none of them a long block
    assert max(capture_ticks) < 10 * np.median(capture_ticks) + 0.05
    print(
        f"capture ticks: {len(ticks)}, longest {max(ticks) * 1000:.1f} ms, median "
        f"{np.median(capture_ticks) * 1000:.1f} ms"
    )


def test_a_whole_64_frame_capture_runs_one_frame_per_tick(extension, tiny_server, tmp_path):
    scene = scene_with_camera(tmp_path, frames=64, size=64, steps=1)
    scene.marionette.use_normal = False
    point_at(extension, tiny_server.url)
    run = start_run()
    tick_until(run, lambda: run.phase == "capture")
    frames_seen, ticks = [], []
    while run.phase == "capture":
        t = time.perf_counter()
        run.tick(bpy.context)
        ticks.append(time.perf_counter() - t)
        frames_seen.append(runtime().capture_frame)
    assert len(ticks) == 64 + 63 + 1 + 1, (
        "64 guide renders, 63 more depth encodings (the last ends the render "
        "step), the camera path, the hand-over to the worker"
    )
    assert sorted(set(frames_seen)) == list(range(1, 65))
    assert max(ticks) < sum(ticks) / 8, "no tick blocks for more than a few frames' renders"
    tick_until(run, lambda: run.done, limit=600)
    assert run.final == "done"


def test_load_pre_cancels_a_running_job_and_the_new_file_is_idle(extension, tiny_server, tmp_path):
    scene_with_camera(tmp_path, frames=8, size=64, steps=150)
    point_at(extension, tiny_server.url)
    run = start_run()
    tick_until(run, lambda: run.phase == "stream" and run.generation.job_id is not None)
    bpy.ops.wm.read_homefile(use_empty=True)
    tick_until(run, lambda: run.done, limit=120)
    assert run.final == "cancelled"
    assert not ext("operators.generate").running()
    log = draw_all()
    assert ("operator", "marionette.generate") in log and ("operator", "marionette.cancel") not in log


def test_unsaved_results_go_to_a_persistent_folder_and_survive_save_as(extension, tiny_server, tmp_path, monkeypatch):
    scene = scene_with_camera(tmp_path, frames=2, size=64, steps=1)
    persistent = tmp_path / "home" / "Marionette"
    monkeypatch.setattr(ext("operators.paths"), "DEFAULT_PERSISTENT", persistent)
    scene.marionette.output_dir = "//renders/ai/"
    point_at(extension, tiny_server.url)
    assert not bpy.data.filepath
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    job = Path(runtime().job_dir)
    assert job.parent == persistent / "renders" / "ai", "the subfolder is kept"
    assert not str(job).startswith(bpy.app.tempdir), "never in the temp folder Blender deletes on quit"
    saved = tmp_path / "elsewhere" / "shot.blend"
    saved.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(saved))
    bpy.ops.wm.read_homefile(use_empty=True)  # quit and come back
    bpy.ops.wm.open_mainfile(filepath=str(saved))
    image = bpy.data.images["Marionette"]
    assert os.path.isfile(bpy.path.abspath(image.filepath))
    image.reload()
    assert image.size[0] == 64


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


@pytest.mark.parametrize("state", ["idle", "failed", "no server", "running"])
def test_every_sub_panel_draws_in_every_state(extension, tiny_server, tmp_path, state):
    scene = scene_with_camera(tmp_path, frames=4, size=64, steps=150)
    s = scene.marionette
    s.use_pose = True
    s.camera_motion = "auto"
    bpy.ops.marionette.lora_add()
    bpy.ops.marionette.keyframe_add()
    bpy.ops.object.armature_add()
    catalog = ext("backend.catalog")
    if state == "no server":
        catalog.clear()
        point_at(extension, "http://127.0.0.1:9")
    else:
        point_at(extension, tiny_server.url)
        bpy.ops.marionette.refresh_models()
    if state == "failed":
        runtime().error = "the server said no: check the model name"
    run = None
    if state == "running":
        s.use_pose = False
        run = start_run()
        tick_until(run, lambda: run.phase != "preflight")
    for camera_motion in ("auto", "manual"):
        s.camera_motion = camera_motion
        log = draw_all()
        assert log
    if state == "running":
        assert ("operator", "marionette.cancel") in log
        bpy.ops.marionette.cancel()
        tick_until(run, lambda: run.done, limit=120)
    if state == "failed":
        assert any("the server said no" in t for t in labels(log))
    if state == "no server":
        assert any("Server models unknown" in t for t in labels(log))


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


def test_models_the_server_lacks_are_named_as_the_panel_choices(extension, tiny_server, tmp_path):
    """The server's 422 for names its config lacks reaches the artist as the panel's choices and what to pick,
    before anything renders; the Marionette panel shows it."""
    scene = scene_with_camera(tmp_path, frames=4, size=64, steps=1)
    s = scene.marionette
    s.base, s.use_depth, s.depth_model = "sd99", True, "foo"
    s.prompt = "embedding:nope, a man"  # and a mistake of another kind: every problem comes in the one answer
    point_at(extension, tiny_server.url)
    assert bpy.ops.marionette.refresh_models() == {"FINISHED"}
    with pytest.raises(RuntimeError, match="is not on the server"):
        bpy.ops.marionette.generate()
    error = runtime().error
    assert "The checkpoint 'sd99' (Prompt & Models) is not on the server. Pick one of: sd15, sd15-single." in error
    assert "The Depth ControlNet 'foo' (Guides) is not on the server. Pick one of: depth, depth-original," in error
    assert "The server also says: prompt: unknown embedding 'nope'" in error  # every problem in the one answer
    assert "controlnets[" not in error and "base:" not in error and "422" not in error
    assert ext("operators.generate")._active.capture is None, "refused before any guide was rendered"
    assert "The Depth ControlNet 'foo' (Guides) is not on the server." in shown(draw_all())
