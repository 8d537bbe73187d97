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

from server.engine.conditioning import Control, Keyframes  # noqa: E402
from server.engine.store import ModelStore  # noqa: E402
from server.engine.windows import ContextWindows, context_windows  # noqa: E402
from server.loaders import ModelConfig  # noqa: E402
from tests.support import tiny_models as tiny  # noqa: E402
from tests.support.metrics import seam_score  # noqa: E402


def flicker(frames: np.ndarray) -> float:
    return float(np.abs(np.diff(frames.astype(np.float64), axis=0)).mean())


def static_depth(size: int) -> torch.Tensor:
    """A still scene's depth guide: a sphere in front of a tilted floor, (1, 3, size, size) in [0, 1]."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    floor = 0.3 + 0.4 * (y + 1) / 2
    sphere = (1 - (x**2 + (y + 0.2) ** 2) / 0.3).clamp(min=0).sqrt()
    return torch.maximum(floor, sphere).clamp(0, 1).expand(1, 3, size, size).contiguous()


def keyframe_following(store, pipe, common, frames: int, image: torch.Tensor, sparsectrl: str) -> dict:
    """SparseCtrl RGB with `image` as the keyframe at frame 0 (prompt unchanged, so they contradict): per mode,
    the distance from the last step's predicted clean latents to the keyframe's VAE latents (relative to the
    latter's norm) at frame 0 and averaged over the other frames, with and without the keyframe."""
    with torch.no_grad():
        image = image.to(pipe.device, pipe.vae.dtype)
        target = (pipe.vae.encode(2 * image - 1).latent_dist.mode()[0] * pipe.vae.config.scaling_factor).float()
    out = {}
    for mode in ("diffusers", "original"):
        store.set_motion_norm(mode)
        row = {}
        for label, keys in (("key", Keyframes(store.sparsectrl(sparsectrl), image, [0], 1.0)), ("none", None)):
            last = {}
            pipe.generate(
                num_frames=frames,
                keyframes=keys,
                generator=torch.Generator().manual_seed(0),
                on_step=lambda i, n, x0, last=last: last.update(x0=x0),
                **common,
            )
            lat = last["x0"][0].transpose(0, 1).float()
            d = (lat - target).flatten(1).norm(dim=1) / target.norm()
            row[label] = (float(d[0]), float(d[1:].mean()))
        out[mode] = row
    return out


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
    p.add_argument("--sparsectrl", default="rgb", help="SparseCtrl RGB model for the keyframe figures ('' skips)")
    p.add_argument("--keyframe", type=Path, help="keyframe image (default: a saturated grid unlike the prompt)")
    args = p.parse_args()
    models = args.models or tiny.build(Path(tempfile.mkdtemp(prefix="marionette-bench-parity-")) / "tiny")
    store = ModelStore(ModelConfig.load(models), device=args.device, dtype=args.dtype)
    depth = static_depth(args.size)
    common = {
        "prompt": "a marionette on a stage",
        "negative_prompt": "blurry",
        "height": args.size,
        "width": args.size,
        "steps": args.steps,
        "guidance": 7.5,
    }
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
            long = pipe.generate(
                num_frames=args.frames,
                context=context,
                controls=control(args.frames),
                generator=torch.Generator().manual_seed(0),
                **common,
            )
            still = pipe.generate(
                num_frames=args.static_frames,
                controls=control(args.static_frames),
                generator=torch.Generator().manual_seed(0),
                **common,
            )
            rows.append((version, mode, seam_score(long, windows), flicker(long), flicker(still)))
    print(
        f"{args.size}x{args.size}, {args.steps} steps, CFG 7.5, {args.frames} frames in windows of "
        f"{args.length}/{args.overlap} (pyramid), static clip {args.static_frames} frames, {args.device} "
        f"{args.dtype}, models {models}, {time.perf_counter() - t0:.0f} s"
    )
    print(f"{'version':>7} {'norm':>10} {'seam score':>11} {'flicker long':>13} {'flicker static':>15}")
    for version, mode, seam, fl_long, fl_still in rows:
        print(f"{version:>7} {mode:>10} {seam:>11.3f} {fl_long:>13.3f} {fl_still:>15.3f}")

    if args.sparsectrl and "v3" in args.versions.split(","):
        if args.keyframe:
            from PIL import Image

            rgb = Image.open(args.keyframe).convert("RGB").resize((args.size, args.size))
            image = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)[None].float() / 255
        else:
            image = torch.zeros(1, 3, args.size, args.size)
            image[:, 0, ::16] = 1.0
            image[:, 2, :, ::8] = 1.0
        pipe = store.pipeline(args.base, "v3")
        found = keyframe_following(store, pipe, common, args.static_frames, image, args.sparsectrl)
        print(
            f"SparseCtrl {args.sparsectrl}, keyframe at frame 0, {args.static_frames} frames: distance to the "
            f"keyframe's latents (relative), last step's predicted clean latents"
        )
        print(f"{'norm':>10} {'frame 0':>8} {'others':>8} {'frame 0 no key':>15} {'others no key':>14}")
        for mode, row in found.items():
            print(
                f"{mode:>10} {row['key'][0]:>8.4f} {row['key'][1]:>8.4f} {row['none'][0]:>15.4f} "
                f"{row['none'][1]:>14.4f}"
            )


if __name__ == "__main__":
    main()
