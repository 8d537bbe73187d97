"""The headless batch on a two-action rig: sequences, sprite sheets, resume, and a failing action."""

from __future__ import annotations

import json
from pathlib import Path

import bpy
import pytest
from conftest import TOKEN

from backend.png import read_png
from cli import batch

pytestmark = pytest.mark.blender   # Blender-side: `make test` runs it on Blender 4.5 and 5.0


def two_action_rig(path: Path):
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 64
    bpy.ops.mesh.primitive_plane_add(size=20)
    bpy.ops.object.armature_add(location=(0, 0, 0))
    rig = bpy.context.object
    rig.name = "Hero"
    bpy.ops.mesh.primitive_cube_add(size=0.5, location=(0, 0, 1))
    cube = bpy.context.object
    cube.parent = rig
    for name, frames, angle in (("Wave", 4, 0.8), ("Nod", 6, -0.5), ("Huge", 1100, 0.1)):
        action = bpy.data.actions.new(name)
        action.use_fake_user = True
        rig.animation_data_create().action = action
        bone = rig.pose.bones[0]
        for frame, value in ((1, 0.0), (frames, angle)):
            bone.rotation_quaternion = (1, value, 0, 0)
            bone.keyframe_insert("rotation_quaternion", frame=frame)
    bpy.ops.object.camera_add(location=(0, -6, 1.5), rotation=(1.45, 0, 0))
    scene.camera = bpy.context.object
    bpy.ops.wm.save_as_mainfile(filepath=str(path))


def test_batch_writes_each_action_and_resumes(tiny_server, tmp_path, capsys):
    blend = tmp_path / "rig.blend"
    two_action_rig(blend)
    out = tmp_path / "out"
    common = [str(blend), "--armature", "Hero", "--server", tiny_server.url, "--token", TOKEN, "--out", str(out),
              "--steps", "2", "--columns", "3"]
    assert batch.main(common + ["--actions", "Wave"]) == 0          # as if the batch stopped after the first action
    first = (out / "Wave" / "frame_0001.png").stat().st_mtime_ns

    assert batch.main(common + ["--actions", "Wave,Nod,Huge"]) == 1   # Huge (1100 frames) fails, the others go on
    printed = capsys.readouterr().out
    assert "Wave: already done, skipped" in printed and "Huge: FAILED" in printed
    assert (out / "Wave" / "frame_0001.png").stat().st_mtime_ns == first
    assert not (out / "Huge" / "done.json").exists()

    for action, frames in (("Wave", 4), ("Nod", 6)):
        folder = out / action
        names = sorted(p.name for p in folder.glob("frame_*.png"))
        assert names == [f"frame_{i:04d}.png" for i in range(1, frames + 1)]
        sheet = json.loads((folder / "sprite.json").read_text())
        assert len(sheet["frames"]) == frames and sheet["columns"] == 3 and sheet["frame_size"] == [64, 64]
        image = read_png(folder / "sprite.png")
        assert image.shape[:2] == (64 * -(-frames // 3), 64 * 3)
        last = sheet["frames"][-1]
        assert (last["x"], last["y"]) == ((frames - 1) % 3 * 64, (frames - 1) // 3 * 64)
        cell = image[last["y"]:last["y"] + 64, last["x"]:last["x"] + 64]
        assert (cell == read_png(folder / f"frame_{frames:04d}.png")).all()
        assert json.loads((folder / "done.json").read_text())["frames"] == frames


def test_unknown_armature_lists_the_ones_there(tmp_path, capsys):
    blend = tmp_path / "rig.blend"
    two_action_rig(blend)
    assert batch.main([str(blend), "--armature", "Nobody", "--server", "http://127.0.0.1:9"]) == 2
    assert "Hero" in capsys.readouterr().out
