"""Blender side: capture throughput, and how long Blender's main thread is blocked while frames arrive.

    .venv/bin/python bench/bench_capture.py                       # capture + 64- and 128-frame imports, 512²
    .venv/bin/python bench/bench_capture.py --generate --frames 16  # and a real generation on the tiny server

Capture: depth + normal passes (Cycles, 1 sample, CPU), the camera path and the pose keypoints (one rigged,
skinned, walking character, hands included) of an animated scene, as the Generate operator's capture does it, in
frames per second; best of `--repeats` runs.

Import: a job's messages arrive as from the server (a worker thread writes each step's preview, then each 512²
frame PNG into the job folder, then queues its message) while this thread does what the operator's timer does
every 20 ms: drain the messages, show a step's preview as the panel does, and import the unbroken run of frames
from the first into the compositor, the sequencer and the camera background, once per tick. The longest tick is
the longest time Blender's UI would be frozen (the first import, which creates the image, nodes and strip, counts
too and is also reported on its own). `--generate` also runs a real generation on the tiny server the same way
(slow on a CPU: minutes for 16 frames at 512²).
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from backend import camera, compositing, launcher, passes, pose_capture  # noqa: E402
from backend.png import write_png  # noqa: E402
from server.protocol import frame_filename  # noqa: E402

TARGETS = {"COMPOSITOR", "SEQUENCER", "CAMERA_BACKGROUND"}
TICK = 0.02  # the Generate operator's event timer
PREVIEW = "Marionette Preview"


def build_scene(size: int, frames: int, pose: bool = True):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, frames
    bpy.ops.mesh.primitive_plane_add(size=30)
    for i in range(6):
        bpy.ops.mesh.primitive_uv_sphere_add(radius=0.6, location=(i * 1.5 - 4, i % 3, 0.6))
    if pose:
        import rig_builders

        rig_builders.build("blender")  # 1.82 m, walking on the spot, at the origin
    bpy.ops.object.camera_add(location=(0, -10, 3), rotation=(1.3, 0, 0))
    cam = bpy.context.object
    scene.camera = cam
    cam.keyframe_insert("location", frame=1)
    cam.location.y = -7
    cam.keyframe_insert("location", frame=frames)
    return scene


def capture(scene, frames, out: Path, pose: bool):
    """What the Generate operator's capture does, one timer tick per step; returns (seconds, ticks, (guides, camera
    path), CPU seconds of this process, all threads: Cycles renders on every core)."""
    rendered, ticks = {}, []
    t, cpu = time.perf_counter(), time.process_time()
    steps = passes.iter_guides(scene, frames, out, rendered)
    while True:
        tick = time.perf_counter()
        ended = next(steps, None) is None
        ticks.append(time.perf_counter() - tick)
        if ended:
            break
    tick = time.perf_counter()
    path = camera.camera_path(scene, frames, rendered["median_depth"])
    if pose:
        names = [obj.name for obj in pose_capture.characters(scene)]
        assert names, "the bench scene's character was not found"
        pose_capture.capture(scene, names, path, rendered["depth_raw"], hands=True)
    ticks.append(time.perf_counter() - tick)
    return time.perf_counter() - t, ticks, (rendered, path), time.process_time() - cpu


def feed(folder: Path, count: int, size: int, interval: float, messages: queue.Queue, steps: int):
    """A job's worker: each step's preview (the server's grid of latent-size frames), then each frame's PNG, each
    written before its message is queued (Generation.stream's order)."""
    rng = np.random.default_rng(0)
    side = size // 8
    cols = int(np.ceil(np.sqrt(count)))
    grid = (int(np.ceil(count / cols)) * side, cols * side, 3)
    for step in range(steps):
        write_png(folder / "preview.png", rng.integers(0, 256, grid, dtype=np.uint8))
        messages.put(("step", {"i": step + 1}))
        time.sleep(interval)
    pool = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(4)]  # noise: the slowest decode
    for index in range(count):
        write_png(folder / frame_filename(index), pool[index % len(pool)])
        messages.put(("frame", {"index": index}))
        time.sleep(interval)
    messages.put(("done", {}))


def show_preview(path: Path):
    """What the operator does with a step's preview (operators/images.named_image, then the panel's icon)."""
    image = bpy.data.images.get(PREVIEW)
    if image is None:
        image = bpy.data.images.load(str(path))
        image.name = PREVIEW
    else:
        image.reload()
    image.preview_ensure()


def import_while_arriving(scene, folder: Path, count: int, size: int, interval: float, steps: int):
    """Ticks every TICK seconds while `steps` previews, then `count` frames arrive; returns every tick's duration,
    the importing ticks', the preview ticks' and every tick's CPU time on this thread."""
    folder.mkdir(parents=True)
    messages: queue.Queue = queue.Queue()
    worker = threading.Thread(target=feed, args=(folder, count, size, interval, messages, steps), daemon=True)
    worker.start()
    received, shown, ticks, imports, previews, cpus, done = set(), 0, [], [], [], [], False
    while not done:
        tick, cpu = time.perf_counter(), time.thread_time()
        stepped = False
        while True:  # Generation.drain
            try:
                kind, data = messages.get_nowait()
            except queue.Empty:
                break
            received.add(data.get("index"))
            done = done or kind == "done"
            if kind == "step":
                show_preview(folder / "preview.png")
                stepped = True
        before = shown
        while shown in received:
            shown += 1
        if shown > before:
            compositing.import_result(scene, folder, shown, scene.frame_start, TARGETS)
        ticks.append(time.perf_counter() - tick)
        cpus.append(time.thread_time() - cpu)
        if shown > before:
            imports.append(ticks[-1])
        elif stepped:
            previews.append(ticks[-1])
        time.sleep(TICK)
    worker.join()
    return ticks, imports, previews, cpus


def generate(scene, work: Path, guides: dict, path: dict, steps: int, size: int, frames: int):
    from backend.client import Client
    from backend.generation import Generation
    from server.protocol import parse_spec
    from tests.support import tiny_models

    models = tiny_models.build(work / "tiny")
    server = launcher.start(
        args=["--models", str(models), "--port", "0", "--data", str(work / "server")], log=work / "server.log"
    )
    try:
        spec = {
            "prompt": "a marionette",
            "steps": steps,
            "width": size,
            "height": size,
            "frames": frames,
            "base": "sd15",
            "motion_module": "v2",
            "camera": path,
            "controlnets": [{"kind": "depth"}, {"kind": "normal"}],
        }
        files = {k: [Path(f).read_bytes() for f in guides[k]] for k in ("depth", "normal")}
        spec = parse_spec(spec)
        generation = Generation(Client(server.url), spec, work / "job")
        generation.start(generation.stream, spec, files)
        ticks, shown, t0 = [], 0, time.perf_counter()  # (wall, this thread's CPU, what the tick did)
        while not (generation.finished.is_set() and generation.messages.empty()):
            tick, cpu, did = time.perf_counter(), time.thread_time(), "drain"
            for kind, data in generation.drain():
                if kind == "frame":
                    generation.received.add(data["index"])
                elif kind == "step" and data.get("preview"):
                    show_preview(generation.out_dir / "preview.png")
                    did = "preview"
            before = shown
            while shown in generation.received:
                shown += 1
            if shown > before:
                compositing.import_result(scene, generation.out_dir, shown, 1, TARGETS)
                did = "first import" if before == 0 else "import"
            ticks.append((time.perf_counter() - tick, time.thread_time() - cpu, did))
            time.sleep(TICK)
        total = time.perf_counter() - t0
    finally:
        server.stop()
    longest = {}
    for wall, cpu, did in ticks:
        longest[did] = max(longest.get(did, (0.0, 0.0)), (wall, cpu))
    print(
        f"generation: {total:.2f} s, {shown} frames; main thread: {len(ticks)} timer ticks, total busy "
        f"{sum(t[0] for t in ticks) * 1000:.0f} ms; longest tick of each kind, wall (this thread's CPU): "
        + ", ".join(f"{did} {wall * 1000:.1f} ({cpu * 1000:.1f}) ms" for did, (wall, cpu) in sorted(longest.items()))
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--frames", type=int, default=16, help="frames captured")
    p.add_argument("--import-frames", default="64,128", help="clip lengths for the import measurement")
    p.add_argument("--interval", type=float, default=0.03, help="seconds between arriving frames")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-pose", action="store_true")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--generate", action="store_true", help="also a real generation on the tiny server")
    p.add_argument("--capture-only", action="store_true")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="marionette-bench-capture-"))
    pose = not args.no_pose
    scene = build_scene(args.size, args.frames, pose)
    frames = list(range(1, args.frames + 1))

    runs = [capture(scene, frames, work / f"guides{r}", pose) for r in range(args.repeats)]
    seconds, ticks, (guides, path), cpu = min(runs, key=lambda run: run[0])
    what = "depth+normal+camera" + ("+pose" if pose else "")
    print(
        f"capture: {args.frames} frames {args.size}x{args.size} {what}: best of {args.repeats} {seconds:.2f} s = "
        f"{args.frames / seconds:.2f} frames/s (all: {', '.join(f'{args.frames / r[0]:.2f}' for r in runs)}); "
        f"{len(ticks)} ticks, longest {max(ticks) * 1000:.0f} ms, "
        f"median {sorted(ticks)[len(ticks) // 2] * 1000:.0f} ms, "
        f"camera path{' + pose' if pose else ''} {ticks[-1] * 1000:.0f} ms; CPU (all threads) "
        f"{min(r[3] for r in runs) / args.frames * 1000:.0f} ms per frame at best"
    )
    if args.capture_only:
        return

    for count in [int(n) for n in args.import_frames.split(",") if n]:
        results = []
        for r in range(args.repeats):
            scene = build_scene(args.size, count, pose=False)
            job = work / f"job{count}_{r}"
            results.append(import_while_arriving(scene, job, count, args.size, args.interval, args.steps))
        longest = [max(result[0]) for result in results]
        best = min(range(len(results)), key=lambda i: longest[i])
        ticks, imports, previews, _ = results[best]
        print(
            f"import {count} frames ({args.size}², every {args.interval * 1000:.0f} ms, compositor + sequencer + "
            f"camera background): longest tick {longest[best] * 1000:.1f} ms (best of {args.repeats}; all: "
            f"{', '.join(f'{t * 1000:.1f}' for t in longest)}); first import {imports[0] * 1000:.1f} ms, "
            f"{len(imports)} importing ticks, median {sorted(imports)[len(imports) // 2] * 1000:.2f} ms, "
            f"later ones at most {max(imports[1:]) * 1000:.1f} ms; {len(previews)} step previews before, at most "
            f"{max(previews, default=0) * 1000:.1f} ms; {len(ticks)} ticks in all; the main thread's own CPU time in "
            f"the longest tick of each run (preemption by other processes left out): "
            f"{', '.join(f'{max(result[3]) * 1000:.1f}' for result in results)} ms"
        )
    if args.generate:
        scene = build_scene(args.size, args.frames, pose=False)
        generate(scene, work, guides, path, args.steps, args.size, args.frames)


if __name__ == "__main__":
    main()
