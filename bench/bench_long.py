"""Long clips: cost per frame at 16, 64 and 128 frames with context windows, against diffusers' FreeNoise (which
windows only the temporal attention) on the same clip, and the seam score of each.

    .venv/bin/python bench/bench_long.py                      # tiny models, CPU
    .venv/bin/python bench/bench_long.py --models FILE --device cuda --dtype float16 --size 512 --steps 25
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.engine.store import ModelStore  # noqa: E402
from server.engine.windows import ContextWindows, context_windows  # noqa: E402
from server.loaders import ModelConfig  # noqa: E402
from tests.support import tiny_models as tiny  # noqa: E402
from tests.support.metrics import seam_score  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", default="16,64,128")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--length", type=int, default=16)
    p.add_argument("--overlap", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--models", type=Path)
    args = p.parse_args()
    models = args.models or tiny.build(Path(tempfile.mkdtemp(prefix="marionette-bench-long-")) / "tiny")
    store = ModelStore(ModelConfig.load(models), device=args.device, dtype=args.dtype)
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    common = dict(prompt="a marionette dancing", negative_prompt="blurry", height=args.size, width=args.size,
                  guidance=7.5)

    def timed(fn):
        fn()  # warm-up at this length
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t, out

    rows = []
    for frames in [int(f) for f in args.frames.split(",")]:
        context = ContextWindows(length=args.length, overlap=args.overlap)
        ours_s, ours = timed(lambda frames=frames, context=context: pipe.generate(
            num_frames=frames, steps=args.steps, context=context, generator=torch.Generator().manual_seed(0),
            **common))
        pipe.enable_free_noise(context_length=args.length, context_stride=args.length - args.overlap)
        try:
            free_s, free = timed(lambda frames=frames: pipe(
                num_frames=frames, num_inference_steps=args.steps, output_type="np",
                generator=torch.Generator().manual_seed(0), **common).frames[0])
        finally:
            pipe.disable_free_noise()
        windows = context_windows(frames, args.length, args.overlap, loop=False)
        seams = len(windows) > 1
        rows.append((frames, ours_s / frames, free_s / frames,
                     seam_score(ours, windows) if seams else float("nan"),
                     seam_score((free * 255).round(), windows) if seams else float("nan")))
    base = rows[0][1]
    print(f"{args.size}x{args.size}, {args.steps} steps, CFG 7.5, window {args.length}/{args.overlap}, "
          f"{args.device} {args.dtype}, models {models}")
    print(f"{'frames':>6} {'ours s/frame':>13} {'x vs 16':>8} {'FreeNoise s/frame':>18} {'seam ours':>10} "
          f"{'seam FreeNoise':>15}")
    for frames, ours, free, seam_ours, seam_free in rows:
        print(f"{frames:>6} {ours:>13.4f} {ours / base:>8.2f} {free:>18.4f} {seam_ours:>10.3f} {seam_free:>15.3f}")


if __name__ == "__main__":
    main()
