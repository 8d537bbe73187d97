"""A Generate from the N-panel while it runs: the capture yields between frames (one frame per tick), Cancel
restores the scene, opening another file cancels the job, and results of an unsaved file go to a persistent folder
that survives Save As."""

from __future__ import annotations

import os
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from panel_driver import draw_all, ext, runtime, start_run, tick_until
from test_extension import point_at, scene_with_camera

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0


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
