"""The N-panel as artists use it, through the installed extension and the real tiny server: pickers and lists,
the generation size and refusals, the models the server lacks, and every sub-panel's draw code in every state
through a recording layout that checks each property and operator it names (tests/panel_driver.py). The run's
capture and lifecycle are in test_panel_run.py, how results look in test_panel_results.py."""

from __future__ import annotations

from pathlib import Path

import bpy
import pytest
from panel_driver import draw_all, ext, labels, runtime, shown, start_run, tick_until
from test_extension import point_at, scene_with_camera

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0


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
    s.prompt_weighting = "comfy"
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    spec = ext("operators.generate")._active.spec.to_dict()
    assert spec["clip_skip"] == 2 and spec["prompt_weighting"] == "comfy"
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
    assert log.index(("prop", "prompt_weighting")) == log.index(("prop", "clip_skip")) + 1  # drawn beside it
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
    assert "\nPrompt: unknown embedding 'nope'" in error  # every problem in the one answer
    assert "controlnets[" not in error and "base:" not in error and "422" not in error
    assert ext("operators.generate")._active.capture is None, "refused before any guide was rendered"
    assert "The Depth ControlNet 'foo' (Guides) is not on the server." in shown(draw_all())
