"""Blender side: capture throughput, and how long Blender's main thread is blocked during a generation.

    .venv/bin/python bench/bench_capture.py            # 512x512, 16 frames, tiny server on CPU

Capture: depth + normal passes (Cycles, 1 sample, CPU) and the camera path of an animated scene, in frames per
second. Main thread: a generation runs in the worker thread exactly as the N-panel runs it, while this thread does
what the modal timer does (drain the messages, import the frames as they arrive); the longest single timer tick is
the longest time Blender's UI would be frozen. The capture itself renders on the main thread (as F12 does) and is
reported separately.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

from backend import camera, compositing, launcher, passes  # noqa: E402
from backend.client import Client  # noqa: E402
from backend.generation import Generation  # noqa: E402
from server.protocol import parse_spec  # noqa: E402


def build_scene(size: int, frames: int):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, frames
    bpy.ops.mesh.primitive_plane_add(size=30)
    for i in range(6):
        bpy.ops.mesh.primitive_uv_sphere_add(radius=0.6, location=(i * 1.5 - 4, i % 3, 0.6))
    bpy.ops.object.camera_add(location=(0, -10, 3), rotation=(1.3, 0, 0))
    cam = bpy.context.object
    scene.camera = cam
    cam.keyframe_insert("location", frame=1)
    cam.location.y = -7
    cam.keyframe_insert("location", frame=frames)
    return scene


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--capture-only", action="store_true", help="measure the capture ticks only")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="marionette-bench-capture-"))
    scene = build_scene(args.size, args.frames)
    frames = list(range(1, args.frames + 1))

    # The panel's capture: one frame per timer tick (passes.iter_guides is what each tick advances).
    rendered, ticks = {}, []
    t = time.perf_counter()
    steps = passes.iter_guides(scene, frames, work / "guides", rendered)
    while True:
        tick = time.perf_counter()
        if next(steps, None) is None:
            ticks.append(time.perf_counter() - tick)
            break
        ticks.append(time.perf_counter() - tick)
    tick = time.perf_counter()
    path = camera.camera_path(scene, frames, rendered["median_depth"])
    ticks.append(time.perf_counter() - tick)
    capture_s = time.perf_counter() - t
    print(
        f"capture: {args.frames} frames {args.size}x{args.size} depth+normal+camera in {capture_s:.2f} s = "
        f"{args.frames / capture_s:.2f} frames/s; {len(ticks)} ticks, longest main-thread block "
        f"{max(ticks) * 1000:.0f} ms (one frame), median {sorted(ticks)[len(ticks) // 2] * 1000:.0f} ms"
    )
    if args.capture_only:
        return

    from tests.support import tiny_models

    models = tiny_models.build(work / "tiny")
    server = launcher.start(
        args=["--models", str(models), "--port", "0", "--data", str(work / "server")], log=work / "server.log"
    )
    try:
        spec = {
            "prompt": "a marionette",
            "steps": args.steps,
            "width": args.size,
            "height": args.size,
            "frames": args.frames,
            "base": "sd15",
            "motion_module": "v2",
            "camera": path,
            "controlnets": [{"kind": "depth"}, {"kind": "normal"}],
        }
        guides = {k: [Path(f).read_bytes() for f in rendered[k]] for k in ("depth", "normal")}
        spec = parse_spec(spec)
        generation = Generation(Client(server.url), spec, work / "job")
        generation.start(generation.stream, spec, guides)
        ticks, received, t0 = [], 0, time.perf_counter()
        while not (generation.finished.is_set() and generation.messages.empty()):
            tick = time.perf_counter()
            for kind, _data in generation.drain():
                if kind == "frame":
                    received += 1
                    compositing.import_result(scene, generation.out_dir, received, 1)
            ticks.append(time.perf_counter() - tick)
            time.sleep(0.1)  # the modal timer's interval
        total = time.perf_counter() - t0
    finally:
        server.stop()
    print(
        f"generation: {total:.2f} s, {received} frames; main thread: {len(ticks)} timer ticks, longest block "
        f"{max(ticks) * 1000:.1f} ms, total busy {sum(ticks) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
