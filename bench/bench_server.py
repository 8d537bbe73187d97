"""Server against plain diffusers, same models and settings, in one run: seconds per job and the ratio.

Plain diffusers: AnimateDiffControlNetPipeline called directly in this process on the same components (loaded
through the server's own loaders), its frames written as PNG files. Server: the real server as a subprocess;
a job is timed from submission to the last frame fetched over HTTP. Both are warmed up first and the median of
`--repeats` runs is reported.

    .venv/bin/python bench/bench_server.py                          # tiny models on CPU
    .venv/bin/python bench/bench_server.py --full --device cuda     # full-size SD1.5 + v2, random weights
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend import launcher  # noqa: E402
from backend.client import Client  # noqa: E402
from server import loaders  # noqa: E402
from server.loaders import ModelConfig  # noqa: E402
from tests.support import tiny_models as tiny  # noqa: E402

KINDS = ("depth", "normal", "openpose")


def guides(frames: int, size: int) -> list[np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size]
    return [
        np.repeat((((xs + ys + 8 * f) % size) * (255 / size)).astype(np.uint8)[..., None], 3, -1) for f in range(frames)
    ]


def png(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    Image.fromarray(a).save(b, format="PNG")
    return b.getvalue()


def plain_diffusers(config: ModelConfig, n_controls: int, args, images, out: Path) -> list[float]:
    from diffusers import AnimateDiffControlNetPipeline
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    entry = lambda kind, name: config.get(kind, name)  # noqa: E731
    base = loaders.load_base(entry("base", "sd15").source, entry("base", "sd15").config)
    adapter = loaders.load_motion_adapter(entry("motion_module", "v2").source)
    nets = [loaders.load_controlnet(entry("controlnet", k).source) for k in KINDS[:n_controls]]
    dtype = getattr(torch, args.dtype)
    pipe = AnimateDiffControlNetPipeline(
        vae=base["vae"],
        text_encoder=base["text_encoder"],
        tokenizer=base["tokenizer"],
        unet=base["unet"],
        motion_adapter=adapter,
        controlnet=MultiControlNetModel(nets),
        scheduler=base["scheduler"],
    )
    pipe.to(args.device, dtype)
    pipe.set_progress_bar_config(disable=True)
    pil = [Image.fromarray(i) for i in images]
    times = []
    for run in range(args.repeats + 1):
        t = time.perf_counter()
        frames = pipe(
            prompt="a marionette",
            negative_prompt="blurry",
            num_frames=args.frames,
            height=args.size,
            width=args.size,
            num_inference_steps=args.steps,
            guidance_scale=7.5,
            conditioning_frames=[pil] * n_controls,
            controlnet_conditioning_scale=[1.0] * n_controls,
            generator=torch.Generator("cpu").manual_seed(0),
        ).frames[0]
        for k, frame in enumerate(frames):
            frame.save(out / f"plain_{k:04d}.png")
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        if run:  # the first run warms up
            times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None
    del pipe
    return times, peak


def server_jobs(url: str, n_controls: int, args, images) -> list[float]:
    client = Client(url)
    encoded = [png(i) for i in images]
    pose = json.dumps([{"people": []}] * args.frames).encode()
    spec = {
        "prompt": "a marionette",
        "negative_prompt": "blurry",
        "seed": 0,
        "steps": args.steps,
        "guidance": 7.5,
        "width": args.size,
        "height": args.size,
        "frames": args.frames,
        "base": "sd15",
        "motion_module": "v2",
        "controlnets": [{"kind": k} for k in KINDS[:n_controls]],
    }
    files = {k if k != "openpose" else "pose": (encoded if k != "openpose" else [pose]) for k in KINDS[:n_controls]}
    times = []
    for run in range(args.repeats + 1):
        t = time.perf_counter()
        job = client.submit(spec, files)
        for _, kind, data in client.events(job):
            if kind == "frame":
                client.fetch(data["url"])
            elif kind in ("error", "cancelled"):
                raise RuntimeError(data)
        if run:
            times.append(time.perf_counter() - t)
    return times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--models", type=Path, help="model config TOML (default: the tiny models)")
    p.add_argument("--controls", default="1,3", help="ControlNet counts to measure")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="marionette-bench-"))
    models = args.models or tiny.build(work / "tiny")
    config = ModelConfig.load(models)
    images = guides(args.frames, args.size)
    server_args = [
        "--port",
        "0",
        "--data",
        str(work / "server"),
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--models",
        str(models),
    ]
    rows = []
    for n in [int(c) for c in args.controls.split(",")]:
        plain, peak = plain_diffusers(config, n, args, images, work)
        server = launcher.start(args=server_args, log=work / "server.log")
        try:
            served = server_jobs(server.url, n, args, images)
        finally:
            server.stop()
        p_med, s_med = statistics.median(plain), statistics.median(served)
        rows.append(
            {
                "controlnets": n,
                "plain_s": round(p_med, 3),
                "server_s": round(s_med, 3),
                "ratio": round(s_med / p_med, 3),
                "plain_peak_gib": peak,
            }
        )
    print(
        f"{args.frames} frames {args.size}x{args.size}, {args.steps} steps, CFG 7.5, {args.device} {args.dtype}, "
        f"median of {args.repeats} after a warm-up, models {models}"
    )
    print(f"{'ControlNets':>11} {'plain s/job':>12} {'server s/job':>13} {'ratio':>7}")
    for r in rows:
        print(f"{r['controlnets']:>11} {r['plain_s']:>12.3f} {r['server_s']:>13.3f} {r['ratio']:>7.3f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
