"""The batch command of the installed extension on a Mixamo-named character built here: names, resume that knows
what changed, RGBA sprites whose alpha is the character's silhouette, engine JSON, directions, and Ctrl-C."""

from __future__ import annotations

import importlib
import json
import math
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import blender_command
import bpy
import numpy as np
import pytest
from conftest import TOKEN
from mathutils import Vector

from backend.client import Client, ServerError
from backend.png import read_png
from cli import demo_scene

ROOT = Path(__file__).resolve().parent.parent
SIZE = 64
MIXAMO = "Armature|mixamo.com|Layer0"
RUN = "Run: fast  v2"

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0


def hero(path: Path, actions=((MIXAMO, 2, 0.6), (RUN, 3, -0.5))):
    """A Mixamo-named character (bone-parented primitives), ground and a prop, one action per (name, frames,
    swing), and a camera 3 m in front; saved to `path`."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    scene.render.fps, scene.render.fps_base = 8, 1.0
    demo_scene.props()
    rig = demo_scene.character("Hero")
    for name, frames, swing in actions:
        action = bpy.data.actions.new(name)
        action.use_fake_user = True
        rig.animation_data_create().action = action
        for frame, value in ((1, 0.0), (frames, swing)):
            for side, sign in (("Left", 1), ("Right", -1)):
                bone = rig.pose.bones[f"{demo_scene.PREFIX}{side}UpLeg"]
                bone.rotation_mode = "XYZ"
                bone.rotation_euler = (sign * value, 0, 0)
                bone.keyframe_insert("rotation_euler", frame=frame)
    bpy.ops.object.camera_add(location=(0, -3.2, 1.0), rotation=(math.radians(88), 0, 0))
    scene.camera = bpy.context.object
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return scene, rig


def command(extension, blend: Path, *argv: str) -> int:
    """`blender -b BLEND --command marionette batch ARGV...`: the file is loaded, then Blender calls the command
    it holds for the id with the arguments after it."""
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    return blender_command.run(extension.batch._handle, extension.batch.execute, ["batch", *argv])


def server_args(tiny_server, out: Path, *more: str) -> list[str]:
    return ["--server", tiny_server.url, "--token", TOKEN, "--out", str(out), "--steps", "2", *more]


def centre_mask(scene, objects, cam) -> np.ndarray:
    """The character's silhouette by ray casts through each pixel centre against its meshes: no render."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    tr, _, bl, tl = (cam.matrix_world @ v for v in cam.data.view_frame(scene=scene))
    origin = cam.matrix_world.translation
    mask = np.zeros((SIZE, SIZE), bool)
    evaluated = [(o.evaluated_get(depsgraph), o.matrix_world.inverted()) for o in objects]
    for j in range(SIZE):
        for i in range(SIZE):
            u, v = (i + 0.5) / SIZE, (j + 0.5) / SIZE
            target = tl + (tr - tl) * u + (bl - tl) * v
            for obj, inverse in evaluated:
                o = inverse @ origin
                d = (inverse @ target) - o
                if obj.ray_cast(o, d.normalized())[0]:
                    mask[j, i] = True
                    break
    return mask


def server_folder(tiny_server, job_id: str) -> Path:
    return tiny_server.log.parent / "jobs" / job_id


def iou_of(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def record(out: Path, folder: str) -> dict:
    return json.loads((out / folder / "batch.json").read_text())


def test_names_become_safe_on_every_system(extension):
    names = importlib.import_module(f"{extension.__name__}.batch.names")
    assert names.safe_name(MIXAMO) == "Armature_mixamo.com_Layer0"
    assert names.safe_name(RUN) == "Run_fast_v2"
    assert names.safe_name("CON") == "CON_" and names.safe_name("lpt1.x") == "lpt1.x_"
    assert names.safe_name(' a<b>"c"?*/\\ . ') == "a_b_c"
    assert names.unique_names(["Walk|A", "Walk:A", "walk a"]) == {
        "Walk|A": "Walk_A",
        "Walk:A": "Walk_A_2",
        "walk a": "walk_a_3",
    }


def test_the_command_makes_rgba_sprites_with_the_silhouette_as_alpha(extension, tiny_server, tmp_path, capfd):
    blend = tmp_path / "hero.blend"
    hero(blend)
    out = tmp_path / "out"
    # one silhouette sample per pixel: a hard mask from the pixel centres, comparable with ray casts exactly
    assert (
        command(
            extension,
            blend,
            *server_args(tiny_server, out, "--pose", "0.8", "--depth", "0.5", "--columns", "2", "--alpha-samples", "1")
            + ["--clip-skip", "2", "--prompt-weighting", "comfy"],
        )
        == 0
    )
    printed = capfd.readouterr().out
    assert "Fra:" not in printed, "Cycles' per-frame lines belong in the log"
    assert f"[1/2] {MIXAMO}: done" in printed and f"[2/2] {RUN}: done" in printed
    assert "action" in printed.splitlines()[-3] and "done" in printed.splitlines()[-1]  # the summary table

    for name, folder, frames in ((MIXAMO, "Armature_mixamo.com_Layer0", 2), (RUN, "Run_fast_v2", 3)):
        rec = record(out, folder)
        assert rec["action"] == name and rec["state"] == "done" and rec["fps"] == 8
        # --pose sends the rig's pose file: the server's own copy of the job holds it
        job = Path(rec["directions"][0]["job"])
        server_job = server_folder(tiny_server, rec["directions"][0]["job_id"])
        assert (server_job / "guides" / "pose.json").read_bytes() == (job / "guides" / "pose.json").read_bytes()
        manifest = json.loads((server_job / "manifest.json").read_text())
        assert manifest["spec"]["clip_skip"] == 2 and manifest["prompt_encoding"]["clip_skip"] == 2
        assert manifest["spec"]["prompt_weighting"] == manifest["prompt_encoding"]["weighting"] == "comfy"
        assert [(c["kind"], round(c["weight"], 4)) for c in manifest["spec"]["controlnets"]] == [
            ("depth", 0.5),
            ("openpose", 0.8),
        ]
        sheet = json.loads((out / folder / "sprite.json").read_text())
        image = read_png(out / folder / "sprite.png")
        assert image.shape[2] == 4 and sheet["meta"]["fps"] == 8 and sheet["meta"]["loop"] is False
        assert sheet["meta"]["action"] == name and sheet["meta"]["size"] == {"w": image.shape[1], "h": image.shape[0]}
        assert len(sheet["frames"]) == frames
        for k, (_key, entry) in enumerate(sheet["frames"].items()):
            frame = read_png(out / folder / f"frame_{k + 1:04d}.png")
            r = entry["frame"]
            assert (r["x"], r["y"]) == (k % 2 * SIZE, k // 2 * SIZE) and (r["w"], r["h"]) == (SIZE, SIZE)
            assert (image[r["y"] : r["y"] + SIZE, r["x"] : r["x"] + SIZE] == frame).all()
            assert entry["duration"] == 125 and entry["sourceSize"] == {"w": SIZE, "h": SIZE}
            assert 0.3 < entry["pivot"]["x"] < 0.7 and 0.8 < entry["pivot"]["y"] <= 1.0  # between the feet
        assert sheet["animations"][folder] == list(sheet["frames"])

    # the alpha of a frame is the character's silhouette, checked against ray casts through the pixel centres
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    rig = bpy.data.objects["Hero"]
    rig.animation_data.action = bpy.data.actions[RUN]
    scene.frame_set(3)
    expected = centre_mask(scene, [o for o in rig.children_recursive if o.type == "MESH"], scene.camera)
    alpha = read_png(out / "Run_fast_v2" / "frame_0003.png")[:, :, 3]
    assert set(np.unique(alpha)) <= {0, 255}
    iou = iou_of(alpha == 255, expected)
    assert expected.sum() > 300 and iou >= 0.99, iou
    assert (
        alpha[
            ~expected
            & ~np.roll(expected, 1, 0)
            & ~np.roll(expected, -1, 0)
            & ~np.roll(expected, 1, 1)
            & ~np.roll(expected, -1, 1)
        ]
        == 0
    ).all(), "the background (ground, props) is exactly clear"


def test_resume_redoes_what_changed_only(extension, tiny_server, tmp_path, capfd):
    blend = tmp_path / "hero.blend"
    hero(blend, actions=((MIXAMO, 2, 0.6),))
    out = tmp_path / "out"
    args = server_args(tiny_server, out, "--trim")
    assert command(extension, blend, *args) == 0
    first = record(out, "Armature_mixamo.com_Layer0")
    frame = out / "Armature_mixamo.com_Layer0" / "frame_0001.png"
    stamp = frame.stat().st_mtime_ns
    capfd.readouterr()

    assert command(extension, blend, *args) == 0
    assert "skipped" in capfd.readouterr().out and frame.stat().st_mtime_ns == stamp

    assert command(extension, blend, *args, "--prompt", "a knight in armour") == 0
    changed = record(out, "Armature_mixamo.com_Layer0")
    assert "skipped" not in capfd.readouterr().out and changed["fingerprint"] != first["fingerprint"]
    assert changed["directions"][0]["job_id"] != first["directions"][0]["job_id"]

    assert command(extension, blend, *args, "--prompt", "a knight in armour", "--force") == 0
    forced = record(out, "Armature_mixamo.com_Layer0")
    assert "skipped" not in capfd.readouterr().out and forced["fingerprint"] == changed["fingerprint"]
    assert forced["directions"][0]["job_id"] != changed["directions"][0]["job_id"]

    assert command(extension, blend, *args, "--prompt", "a knight in armour", "--vae", "tiny-ft") == 0
    other_vae = record(out, "Armature_mixamo.com_Layer0")
    assert "skipped" not in capfd.readouterr().out and other_vae["fingerprint"] != forced["fingerprint"]
    job = server_folder(tiny_server, other_vae["directions"][0]["job_id"])
    manifest = json.loads((job / "manifest.json").read_text())
    assert manifest["spec"]["vae"] == "tiny-ft" and manifest["plan"]["vae"]["name"] == "tiny-ft"

    # trimmed sheet: each rectangle holds the frame's opaque box, placed where spriteSourceSize says
    sheet = json.loads((out / "Armature_mixamo.com_Layer0" / "sprite.json").read_text())
    image = read_png(out / "Armature_mixamo.com_Layer0" / "sprite.png")
    for k, entry in enumerate(sheet["frames"].values()):
        full = read_png(out / "Armature_mixamo.com_Layer0" / f"frame_{k + 1:04d}.png")
        r, s = entry["frame"], entry["spriteSourceSize"]
        assert entry["trimmed"] and (r["w"], r["h"]) == (s["w"], s["h"]) < (SIZE, SIZE)
        assert (
            image[r["y"] : r["y"] + r["h"], r["x"] : r["x"] + r["w"]]
            == full[s["y"] : s["y"] + s["h"], s["x"] : s["x"] + s["w"]]
        ).all()
        outside = full.copy()
        outside[s["y"] : s["y"] + s["h"], s["x"] : s["x"] + s["w"]] = 0
        assert not outside[:, :, 3].any()

    # the default soft alpha (16 samples spread over each pixel) covers the same silhouette, edges anti-aliased
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene, rig = bpy.context.scene, bpy.data.objects["Hero"]
    scene.frame_set(1)
    expected = centre_mask(scene, [o for o in rig.children_recursive if o.type == "MESH"], scene.camera)
    alpha = read_png(out / "Armature_mixamo.com_Layer0" / "frame_0001.png")[:, :, 3]
    assert len(np.unique(alpha)) > 4 and iou_of(alpha >= 128, expected) >= 0.95, iou_of(alpha >= 128, expected)


@contextmanager
def nudged(path: Path):
    """A safetensors file with its first weight's lowest byte changed (a file as valid, its hash another), restored
    after."""
    original = path.read_bytes()
    start = 8 + int.from_bytes(original[:8], "little")  # the data, after the header's length and the JSON header
    path.write_bytes(original[:start] + bytes([original[start] ^ 1]) + original[start + 1 :])
    try:
        yield
    finally:
        path.write_bytes(original)


def test_a_changed_embedding_or_vae_file_redoes_the_action(extension, tiny_server, tiny_models, tmp_path, capfd):
    """The fingerprint holds the sha256 of the embeddings the prompts name and of the VAE."""
    blend = tmp_path / "hero.blend"
    hero(blend, actions=((MIXAMO, 2, 0.6),))
    out = tmp_path / "out"
    args = server_args(tiny_server, out, "--negative", "blurry, EasyNegative", "--vae", "tiny-ft")
    assert command(extension, blend, *args) == 0
    first = record(out, "Armature_mixamo.com_Layer0")["fingerprint"]
    capfd.readouterr()
    with nudged(tiny_models / "embeddings" / "EasyNegative.safetensors"):
        assert command(extension, blend, *args) == 0
        assert "skipped" not in capfd.readouterr().out
        embedding = record(out, "Armature_mixamo.com_Layer0")["fingerprint"]
        assert command(extension, blend, *args) == 0
        assert "skipped" in capfd.readouterr().out  # unchanged since: kept
    with nudged(tiny_models / "vae" / "tiny-ft-mse.safetensors"):
        assert command(extension, blend, *args) == 0
        assert "skipped" not in capfd.readouterr().out
        vae = record(out, "Armature_mixamo.com_Layer0")["fingerprint"]
    assert len({first, embedding, vae}) == 3


def test_eight_directions_make_eight_rows_45_degrees_apart(extension, tiny_server, tmp_path, capfd):
    blend = tmp_path / "hero.blend"
    hero(blend, actions=((MIXAMO, 2, 0.6),))
    out = tmp_path / "out"
    assert command(extension, blend, *server_args(tiny_server, out, "--directions", "8", "--steps", "1")) == 0
    rec = record(out, "Armature_mixamo.com_Layer0")
    sheet = json.loads((out / "Armature_mixamo.com_Layer0" / "sprite.json").read_text())
    assert [d["yaw"] for d in rec["directions"]] == [45.0 * k for k in range(8)]
    assert len(sheet["animations"]) == 8 and len({e["frame"]["y"] for e in sheet["frames"].values()}) == 8
    seeds = {
        json.loads((server_folder(tiny_server, d["job_id"]) / "manifest.json").read_text())["spec"]["seed"]
        for d in rec["directions"]
    }
    assert seeds == {0}
    positions = [Vector([row[3] for row in d["camera"][:3]]) for d in rec["directions"]]
    centre = Vector(rec["turn_centre"][:2])  # the ground contact between the feet, which stand at the origin
    assert centre.length < 0.1 and rec["turn_centre"][2] == pytest.approx(0, abs=0.01)
    angles = [math.degrees(math.atan2(p.y - centre.y, p.x - centre.x)) for p in positions]
    for a, b in zip(angles, angles[1:] + angles[:1]):
        assert (b - a) % 360 == pytest.approx(45, abs=0.5)
    assert len({round((p.xy - centre).length, 4) for p in positions}) == 1
    assert {round(p.z, 3) for p in positions} == {1.0}
    for d in rec["directions"]:
        alpha = read_png(out / "Armature_mixamo.com_Layer0" / d["folder"] / "frame_0001.png")[:, :, 3]
        ys, xs = np.nonzero(alpha)
        assert len(xs) > 200, f"yaw {d['yaw']} does not see the character"
        assert xs.min() > 0 and xs.max() < SIZE - 1 and ys.min() > 0, f"yaw {d['yaw']} cuts the character off"

    assert "Info: Marionette" not in capfd.readouterr().out


def seconds_per_step(tiny_server) -> float:
    """A step's time on the tiny server now, for a job of the batch's size (64², 3 frames): the median gap between
    the step events of a short job. It varies more than tenfold with the machine's load (0.76 s and 17 s measured
    minutes apart at load 8)."""
    client = Client(tiny_server.url, TOKEN)
    spec = {"prompt": "a step's time", "steps": 5, "width": SIZE, "height": SIZE, "frames": 3}
    job = client.submit({**spec, "base": "sd15", "motion_module": "v2"})
    times = [time.monotonic() for _, kind, _ in client.events(job) if kind == "step"]
    return statistics.median(b - a for a, b in zip(times, times[1:]))


def lines_of(process) -> queue.Queue:
    """The process's output lines as they come (None at its end), read by a thread: waiting on one has a limit."""
    lines = queue.Queue()

    def read():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


# The second job lasts this long at the step time measured first, and at least 20 steps (the measure may catch a
# load spike): the cancel lands well within it.
CANCEL_WINDOW_S = 15


def test_ctrl_c_cancels_the_servers_job_keeps_what_arrived_and_exits_130(tiny_server, tmp_path):
    """Ctrl-C as soon as the second action's job has made a step. Timing comes from the machine as it is: the
    steps make the job last CANCEL_WINDOW_S at the step time measured now, and every wait is for an event (a
    line of the batch, its exit) within a limit that grows with that step time."""
    step_s = seconds_per_step(tiny_server)
    steps = min(150, max(20, math.ceil(CANCEL_WINDOW_S / step_s)))
    patience = 300 + 20 * step_s  # the longest quiet spell: Blender's start, guide renders, a step
    blend = tmp_path / "hero.blend"
    hero(blend)
    out = tmp_path / "out"
    # Blender's user folder of its own: the batch installs the extension there, not over this session's copy
    env = dict(os.environ, PYTHONUNBUFFERED="1", BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"))
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.batch", str(blend), *server_args(tiny_server, out), "--steps", str(steps)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    printed, lines = [], lines_of(process)
    try:
        while not (printed and printed[-1].startswith(f"[2/2] {RUN}: step")):
            try:
                line = lines.get(timeout=patience)
            except queue.Empty:
                raise AssertionError(f"nothing printed for {patience:.0f} s:\n" + "".join(printed)) from None
            assert line is not None, "the batch ended before its second job made a step:\n" + "".join(printed)
            printed.append(line)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=patience)
    finally:
        process.kill()
    while (line := lines.get(timeout=60)) is not None:
        printed.append(line)
    printed = "".join(printed)
    log = out / "blender.log"
    assert process.returncode == 130, printed + (log.read_text()[-3000:] if log.exists() else "")
    assert "cancelled" in printed and "Traceback" not in printed
    assert record(out, "Armature_mixamo.com_Layer0")["state"] == "done"
    assert len(list((out / "Armature_mixamo.com_Layer0").glob("frame_*.png"))) == 2  # earlier frames kept
    cancelled = record(out, "Run_fast_v2")
    assert cancelled["state"] == "cancelled"
    job = Client(tiny_server.url, TOKEN).status(cancelled["directions"][0]["job_id"])
    assert job["state"] == "cancelled" and job["step"] < steps, (job, steps, step_s)


def test_a_second_ctrl_c_quits_at_once(tmp_path):
    script = (
        "import os, signal, time\n"
        "from batch.terminal import Interrupt\n"
        "with Interrupt(lambda: print('first: cancel asked', flush=True)):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.2)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(30)\n"
        "print('still running')\n"
    )
    t = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 130 and done.stdout == "first: cancel asked\n", done.stdout + done.stderr
    assert time.monotonic() - t < 20


def test_a_gltf_round_trip_of_the_character_batches(extension, tiny_server, tmp_path):
    """Exported to glTF and imported as a game team gets it: the Mixamo action name survives the trip, the meshes
    stay bone-parented, the pose guide finds the rig."""
    hero(tmp_path / "hero.blend", actions=((MIXAMO, 2, 0.6),))
    assert bpy.ops.export_scene.gltf(
        filepath=str(tmp_path / "hero.glb"), export_animation_mode="ACTIONS", export_cameras=True
    ) == {"FINISHED"}
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = SIZE
    scene.render.fps = 8
    assert bpy.ops.import_scene.gltf(filepath=str(tmp_path / "hero.glb")) == {"FINISHED"}
    assert MIXAMO in bpy.data.actions
    scene.camera = next(o for o in bpy.data.objects if o.type == "CAMERA")
    blend = tmp_path / "imported.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    out = tmp_path / "out"
    assert (
        command(
            extension,
            blend,
            *server_args(tiny_server, out, "--armature", "Hero", "--actions", MIXAMO, "--pose", "--steps", "1"),
        )
        == 0
    )
    rec = record(out, "Armature_mixamo.com_Layer0")
    assert rec["action"] == MIXAMO and rec["state"] == "done"
    pose = json.loads((Path(rec["directions"][0]["job"]) / "guides" / "pose.json").read_text())
    assert len(pose) == 2 and all(frame["people"] for frame in pose)  # the rig seen in both frames
    alpha = read_png(out / "Armature_mixamo.com_Layer0" / "frame_0001.png")[:, :, 3]
    assert alpha.sum() > 200 * 255 and not alpha[:, 0].any() and not alpha[:, -1].any()


def test_models_config_starts_a_server_for_the_batch_and_stops_it(extension, tiny_models, tmp_path, capfd):
    blend = tmp_path / "hero.blend"
    hero(blend, actions=((MIXAMO, 2, 0.6),))
    out = tmp_path / "out"
    models = tiny_models / "models.toml"
    python = os.environ.get("MARIONETTE_SERVER_PYTHON")  # Blender 5.0 run: bpy here, the server stack there
    code = command(
        extension,
        blend,
        "--models-config",
        str(models),
        "--out",
        str(out),
        "--steps",
        "1",
        "--depth",
        *(["--server-python", python] if python else []),
    )
    log = out / "server.log"
    assert code == 0, capfd.readouterr().out + (log.read_text()[-3000:] if log.exists() else "no server log")
    assert record(out, "Armature_mixamo.com_Layer0")["state"] == "done"
    url = re.search(r"ready at (http://\S+)", (out / "server.log").read_text()).group(1)
    with pytest.raises(ServerError, match="cannot reach"):
        Client(url, timeout=2).health()


def test_unknown_armature_lists_the_ones_there(extension, tmp_path, capfd):
    blend = tmp_path / "hero.blend"
    hero(blend)
    assert command(extension, blend, "--armature", "Nobody", "--server", "http://127.0.0.1:9") == 2
    assert "'Hero'" in capfd.readouterr().out


def test_a_model_the_server_lacks_is_named_by_its_option(extension, tiny_server, tmp_path, capfd):
    blend = tmp_path / "hero.blend"
    hero(blend)
    out = tmp_path / "out"
    args = server_args(tiny_server, out, "--base", "sd99", "--prompt", "embedding:nope, a knight")
    assert command(extension, blend, *args) == 1
    said = capfd.readouterr().out
    assert "The checkpoint 'sd99' (--base) is not on the server. Pick one of: sd15, sd15-single." in said
    assert "sd15-single. Prompt: unknown embedding 'nope'" in said  # every problem in the one answer
    assert "base:" not in said and not list(out.rglob("*.png")), "refused before anything rendered"
