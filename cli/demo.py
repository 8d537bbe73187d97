"""`make demo`: the demo scene through the extension's operators, the server and generation, into out/demo/.

    make demo TINY=1     # offline, tiny random models: the whole path on any machine in a minute
    make demo            # the public models (downloaded to the Hugging Face cache on the first run; wants a GPU)

Output: frames/frame_0001.png ..., animation.gif, animation.mp4, contact_sheet.png (each guide row above the
generated frames), manifest.json, demo.blend (the scene, to open in Blender).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import time
from pathlib import Path

import bpy
import numpy as np

from backend.client import Client
from backend.png import read_png, write_png
from batch import media  # the extension's GIF/MP4 writer (stdlib only)
from cli import demo_scene, extension

PUBLIC_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def can_get_public_models() -> bool:
    """True when the public weights are in the Hugging Face cache or the hub can be reached."""
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(PUBLIC_BASE, "model_index.json"), str):
        return True
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


def contact_sheet(guides: Path, frames: list[Path], out: Path):
    rows = []
    for kind in ("depth", "normal", "openpose"):
        files = sorted(guides.glob(f"{kind}_*.png"))
        if len(files) == len(frames):
            rows.append(np.concatenate([read_png(f)[..., :3] for f in files], axis=1))
    rows.append(np.concatenate([read_png(f)[..., :3] for f in frames], axis=1))
    write_png(out, np.concatenate(rows, axis=0))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cli.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--tiny", action="store_true", help="tiny random models, offline")
    p.add_argument("--models", default="", help="a model config TOML for local weights (README)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int)
    p.add_argument("--steps", type=int)
    args = p.parse_args(argv)
    size = args.size or (128 if args.tiny else 512)
    steps = args.steps or (8 if args.tiny else 25)
    if not (args.tiny or args.models or can_get_public_models()):
        print(
            "The public models are not in the Hugging Face cache and the hub cannot be reached.\n"
            "  - offline demo on tiny random models:   make demo TINY=1\n"
            "  - your own local weights: write a model config TOML (README, 'Pointing it at real weights') and\n"
            "    run .venv/bin/python -m cli.demo --models my_models.toml"
        )
        return 2

    out = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    extension.install()
    scene, _rig = demo_scene.build(frames=args.frames, size=size)
    bpy.ops.wm.save_as_mainfile(filepath=str((out / "demo.blend").resolve()))
    settings = scene.marionette
    settings.prompt = "a wooden marionette walking through a sunny toy town, soft light, detailed"
    settings.steps, settings.seed = steps, 42
    settings.use_depth, settings.use_normal, settings.use_pose = True, True, True
    settings.normal_weight = 0.5
    settings.camera_motion = "auto"
    settings.output_dir = str((out / "jobs").resolve())

    from backend import launcher

    models = args.models
    if args.tiny:
        from tests.support import tiny_models

        models = str(tiny_models.build(out / "server" / "tiny-models"))
    server_args = ["--port", "0", "--data", str(out / "server")] + (["--models", models] if models else [])
    print(f"starting the server (log: {out / 'server.log'}) ...", flush=True)
    server = launcher.start(args=server_args, log=out / "server.log")
    try:
        extension.preferences().server_url = server.url
        t = time.perf_counter()
        if bpy.ops.marionette.generate() != {"FINISHED"}:
            print(f"the demo failed: {bpy.context.window_manager.marionette.error}")
            return 1
        runtime = bpy.context.window_manager.marionette
        job_dir = Path(runtime.job_dir)
        manifest = Client(server.url).fetch(f"/jobs/{runtime.job_id}/manifest")
    finally:
        server.stop()
    (out / "manifest.json").write_bytes(manifest)
    frames_dir = out / "frames"
    frames_dir.mkdir()
    frames = [Path(shutil.copy2(f, frames_dir / f.name)) for f in sorted(job_dir.glob("frame_*.png"))]
    fps = scene.render.fps / scene.render.fps_base
    media.write_video(frames_dir, fps, out / "animation.gif")
    media.write_video(frames_dir, fps, out / "animation.mp4")
    # the server keeps every guide it used, the pose images it drew from the rig's keypoints included
    contact_sheet(out / "server" / "jobs" / runtime.job_id / "guides", frames, out / "contact_sheet.png")
    plan = json.loads(manifest)["plan"]
    print(
        f"done in {time.perf_counter() - t:.1f} s: {len(frames)} frames, camera LoRAs "
        f"{plan.get('motion_loras')}, in {out}: frames/, animation.gif, animation.mp4, contact_sheet.png, "
        f"manifest.json, demo.blend"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
