"""Headless batch: one animation per action of a rigged character, through the extension's own operators.

    .venv/bin/python -m cli.batch scene.blend --armature Hero --actions Walk,Run --prompt "a knight" --out out/hero
    .venv/bin/python -m cli.batch scene.blend --armature Hero --tiny --loop --gif --mp4    # all actions, tiny models
    blender -b scene.blend --python cli/batch.py -- --armature Hero ...                    # inside Blender too

Per action, in OUT/<action>/: frame_0001.png ... (always), sprite.png + sprite.json (the grid and each frame's
rectangle), loop/ (a looping variant, with --loop), animation.gif / .mp4 (with --gif / --mp4), done.json. An action
whose done.json exists is skipped, so an interrupted batch resumes where it stopped; a failing action is reported
and the others go on (the exit code is 1 if any failed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (blender --python cli/batch.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bpy  # noqa: E402

from cli import extension, media  # noqa: E402


def parse_args(argv=None):
    if argv is None:
        argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    p = argparse.ArgumentParser(prog="python -m cli.batch", description=__doc__.splitlines()[0])
    p.add_argument("blend", nargs="?", type=Path, help="the .blend (default: the file Blender has open)")
    p.add_argument("--armature", required=True, help="the character's armature object")
    p.add_argument("--actions", default="", help="comma-separated action names (default: all actions)")
    p.add_argument("--camera", help="camera object (default: the scene camera)")
    p.add_argument("--prompt", default="a stylised game character, clean background")
    p.add_argument("--negative", default="blurry, deformed, low quality")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int)
    p.add_argument("--out", type=Path, default=Path("out/batch"))
    p.add_argument("--server", help="URL of a running server (default: start one)")
    p.add_argument("--token", default="")
    p.add_argument("--server-python", default="", help="Python with the server's packages (default: this one)")
    p.add_argument("--models", default="", help="model config TOML for the server the batch starts")
    p.add_argument("--tiny", action="store_true", help="start the server on tiny random models (offline)")
    p.add_argument("--loop", action="store_true", help="also make a looping variant of each action")
    p.add_argument("--gif", action="store_true")
    p.add_argument("--mp4", action="store_true")
    p.add_argument("--columns", type=int, help="sprite sheet columns (default: near-square)")
    return p.parse_args(argv)


def use_action(armature, action):
    """Make `action` the armature's active action (and its slot, on Blender 4.4+ slotted actions)."""
    data = armature.animation_data or armature.animation_data_create()
    data.action = action
    slots = getattr(action, "slots", None)
    if slots and hasattr(data, "action_slot") and data.action_slot is None:
        data.action_slot = slots[0]
    start, end = (int(round(v)) for v in action.frame_range)
    return start, end


def generate(out_dir: Path, loop: bool) -> Path:
    """Run marionette.generate for the scene's frame range; returns the job folder with the frames."""
    settings = bpy.context.scene.marionette
    settings.output_dir = str(out_dir / "jobs")
    settings.loop = loop
    if bpy.ops.marionette.generate() != {"FINISHED"}:
        raise RuntimeError(bpy.context.window_manager.marionette.error or "generation did not finish")
    return Path(bpy.context.window_manager.marionette.job_dir)


def collect(job_dir: Path, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    frames = []
    for frame in sorted(job_dir.glob("frame_*.png")):
        frames.append(Path(shutil.copy2(frame, dest / frame.name)))
    return frames


def run_action(args, scene, armature, action, out: Path) -> dict:
    start, end = use_action(armature, action)
    scene.frame_start, scene.frame_end = start, end
    fps = scene.render.fps / scene.render.fps_base
    summary = {"action": action.name, "frames": end - start + 1, "fps": fps}
    job = generate(out, loop=False)
    frames = collect(job, out)
    summary["sprite"] = media.sprite_sheet(frames, out / "sprite.png", args.columns)["image"]
    if args.loop:
        looped = collect(generate(out, loop=True), out / "loop")
        media.sprite_sheet(looped, out / "loop" / "sprite.png", args.columns)
        summary["loop"] = "loop/"
    for wanted, suffix in ((args.gif, ".gif"), (args.mp4, ".mp4")):
        if wanted:
            media.write_video(out, fps, out / f"animation{suffix}")
            if args.loop:
                media.write_video(out / "loop", fps, out / "loop" / f"animation{suffix}")
    summary["job"] = str(job)
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    extension.install()
    if args.blend:
        bpy.ops.wm.open_mainfile(filepath=str(args.blend))
    scene = bpy.context.scene
    armature = bpy.data.objects.get(args.armature)
    if armature is None or armature.type != "ARMATURE":
        armatures = [o.name for o in bpy.data.objects if o.type == "ARMATURE"]
        print(f"no armature {args.armature!r}; armatures in the file: {', '.join(armatures) or 'none'}")
        return 2
    if args.camera:
        scene.camera = bpy.data.objects[args.camera]
    names = [n for n in args.actions.split(",") if n] or [a.name for a in bpy.data.actions]
    missing = [n for n in names if n not in bpy.data.actions]
    if missing:
        print(f"unknown actions {missing}; actions in the file: {', '.join(a.name for a in bpy.data.actions)}")
        return 2
    settings = scene.marionette
    settings.prompt, settings.negative_prompt, settings.seed = args.prompt, args.negative, args.seed
    if args.steps:
        settings.steps = args.steps
    settings.use_scene_range = True

    server = None
    prefs = extension.preferences()
    if args.server:
        prefs.server_url, prefs.token = args.server, args.token
    else:
        from backend import launcher

        models = args.models
        if args.tiny:  # built by the server's Python: Blender's own has no torch
            from tests.support import tiny_models

            models = str(tiny_models.build_with(args.server_python or None, args.out / "server" / "tiny-models"))
        server_args = ["--port", "0", "--data", str(args.out / "server")] + (["--models", models] if models else [])
        print("starting the server ...", flush=True)
        server = launcher.start(args.server_python or None, server_args, log=args.out / "server.log")
        prefs.server_url = server.url
    failed = []
    try:
        for k, name in enumerate(names, 1):
            out = args.out / name
            done = out / "done.json"
            if done.exists():
                print(f"[{k}/{len(names)}] {name}: already done, skipped", flush=True)
                continue
            print(f"[{k}/{len(names)}] {name}: generating ...", flush=True)
            t = time.perf_counter()
            try:
                summary = run_action(args, scene, armature, bpy.data.actions[name], out)
            except Exception as e:  # noqa: BLE001 - one failing action must not stop the others
                failed.append(name)
                print(f"[{k}/{len(names)}] {name}: FAILED: {e}", flush=True)
                continue
            summary["seconds"] = round(time.perf_counter() - t, 1)
            done.write_text(json.dumps(summary, indent=2))
            print(f"[{k}/{len(names)}] {name}: {summary['frames']} frames in {summary['seconds']} s -> {out}",
                  flush=True)
    finally:
        if server is not None:
            server.stop()
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
