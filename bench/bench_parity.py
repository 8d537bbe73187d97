"""The original AnimateDiff's normalisation against diffusers': seam score on a long windowed clip and flicker
(mean absolute frame-to-frame difference, 0..255) of a static scene, per motion module version.

The static scene: one depth guide, the same on every frame (a still camera on a still scene), through the depth
ControlNet, and one prompt. Same seed and models for both modes; only `ModelStore.set_motion_norm` changes.

    .venv/bin/python bench/bench_parity.py                                   # tiny models, CPU
    .venv/bin/python bench/bench_parity.py --models FILE --device cuda --dtype float16 --size 512 --steps 25 \\
        --versions v1,v2,v3 --frames 64
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server import tiny  # noqa: E402
from server.metrics import seam_score  # noqa: E402
from server.models import ModelConfig, ModelStore  # noqa: E402
from server.pipeline import ContextWindows, Control, context_windows  # noqa: E402


def flicker(frames: np.ndarray) -> float:
    return float(np.abs(np.diff(frames.astype(np.float64), axis=0)).mean())


def static_depth(size: int) -> torch.Tensor:
    """A still scene's depth guide: a sphere in front of a tilted floor, (1, 3, size, size) in [0, 1]."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    floor = 0.3 + 0.4 * (y + 1) / 2
    sphere = (1 - (x ** 2 + (y + 0.2) ** 2) / 0.3).clamp(min=0).sqrt()
    return torch.maximum(floor, sphere).clamp(0, 1).expand(1, 3, size, size).contiguous()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--versions", default="v1,v2,v3")
    p.add_argument("--frames", type=int, default=40, help="long clip for the seam score")
    p.add_argument("--static-frames", type=int, default=16, help="clip for the flicker figure")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--length", type=int, default=16)
    p.add_argument("--overlap", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--models", type=Path)
    p.add_argument("--base", default="sd15")
    p.add_argument("--controlnet", default="depth")
    args = p.parse_args()
    models = args.models or tiny.build(Path(tempfile.mkdtemp(prefix="marionette-bench-parity-")) / "tiny")
    store = ModelStore(ModelConfig.load(models), device=args.device, dtype=args.dtype)
    depth = static_depth(args.size)
    common = {"prompt": "a marionette on a stage", "negative_prompt": "blurry", "height": args.size,
              "width": args.size, "steps": args.steps, "guidance": 7.5}
    context = ContextWindows(length=args.length, overlap=args.overlap)
    windows = context_windows(args.frames, args.length, args.overlap, loop=False)

    def control(n):
        return [Control(store.controlnet(args.controlnet), depth.expand(n, -1, -1, -1))]

    t0 = time.perf_counter()
    rows = []
    for version in args.versions.split(","):
        pipe = store.pipeline(args.base, version)
        store.set_loras(pipe, [])
        for mode in ("diffusers", "original"):
            store.set_motion_norm(mode)
            long = pipe.generate(num_frames=args.frames, context=context, controls=control(args.frames),
                                 generator=torch.Generator().manual_seed(0), **common)
            still = pipe.generate(num_frames=args.static_frames, controls=control(args.static_frames),
                                  generator=torch.Generator().manual_seed(0), **common)
            rows.append((version, mode, seam_score(long, windows), flicker(long), flicker(still)))
    print(f"{args.size}x{args.size}, {args.steps} steps, CFG 7.5, {args.frames} frames in windows of "
          f"{args.length}/{args.overlap} (pyramid), static clip {args.static_frames} frames, {args.device} "
          f"{args.dtype}, models {models}, {time.perf_counter() - t0:.0f} s")
    print(f"{'version':>7} {'norm':>10} {'seam score':>11} {'flicker long':>13} {'flicker static':>15}")
    for version, mode, seam, fl_long, fl_still in rows:
        print(f"{version:>7} {mode:>10} {seam:>11.3f} {fl_long:>13.3f} {fl_still:>15.3f}")


if __name__ == "__main__":
    main()
