"""Does the generated video follow the camera? CameraCtrl on real weights, judged by the picture's global drift.

    .venv/bin/python bench/bench_cameractrl.py --models real_models.toml --out out/cameractrl      # GPU, real weights
    .venv/bin/python bench/bench_cameractrl.py --tiny --out out/cameractrl-tiny                    # plumbing only

The config must name `base.sd15`, `motion_module.v3` and `camera_control.cameractrl` (the default config does,
from the hub). For each camera move (static, pan left, pan right, tilt up, orbit, dolly in) it generates CameraCtrl's
training setting (16 frames, 384×256, DDIM 25 steps, guidance 14, one seed) and measures the content's drift between
consecutive frames by phase correlation: a pan left must drift content right (dx > 0), a pan right left, a tilt up
down (dy > 0), the static camera neither. Frames go to OUT/<move>/, the figures to OUT/results.json.
Tiny models check that the script runs; only real weights say anything about motion.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

# move -> (camera-to-world rotation, centre, median depth) at time t (s), in the first camera's OpenCV axes,
# and the drift sign it must produce: (sign of dx, sign of dy), 0 = none expected.
MOVES = {
    "static": (lambda t: (np.eye(3), (0, 0, 0), 5.0), (0, 0)),
    "pan_left": (lambda t: (_rot((0, 1, 0), -0.4 * t), (0, 0, 0), 5.0), (1, 0)),
    "pan_right": (lambda t: (_rot((0, 1, 0), 0.4 * t), (0, 0, 0), 5.0), (-1, 0)),
    "tilt_up": (lambda t: (_rot((1, 0, 0), 0.4 * t), (0, 0, 0), 5.0), (0, 1)),
    "orbit": (
        lambda t: (_rot((0, 1, 0), -0.5 * t), (5 * math.sin(0.5 * t), 0, 5 - 5 * math.cos(0.5 * t)), 10.0),
        (1, 0),
    ),
    "dolly_in": (lambda t: (np.eye(3), (0, 0, 1.5 * t), 5.0 - 1.5 * t), (0, 0)),
}


def _rot(axis, angle):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def camera_path(move, frames, width, height, fps=8):
    pose = MOVES[move][0]
    f = 0.9 * width  # about a 58° horizontal field of view
    out = {"fps": fps, "width": width, "height": height, "frames": []}
    for k in range(frames):
        R, C, depth = pose(k / fps)
        c2w = np.eye(4)
        c2w[:3, :3], c2w[:3, 3] = R, C
        out["frames"].append(
            {
                "frame": k + 1,
                "K": [[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]],
                "world_to_camera": np.linalg.inv(c2w).tolist(),
                "depth": depth,
            }
        )
    return out


def drift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(dx, dy) pixels that the content moved from frame a to frame b (phase correlation of the grey images)."""
    ga, gb = a.mean(-1), b.mean(-1)
    window = np.outer(np.hanning(ga.shape[0]), np.hanning(ga.shape[1]))
    cross = np.fft.fft2(gb * window) * np.conj(np.fft.fft2(ga * window))
    corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    y, x = np.unravel_index(np.argmax(corr), corr.shape)
    h, w = corr.shape
    return float(x - w if x > w // 2 else x), float(y - h if y > h // 2 else y)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, help="model config TOML (default: the server's, public hub models)")
    p.add_argument("--tiny", action="store_true", help="tiny random models (plumbing only)")
    p.add_argument("--out", type=Path, default=Path("out/cameractrl"))
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--moves", default=",".join(MOVES))
    args = p.parse_args(argv)

    import torch
    from PIL import Image

    from server.camera import window_input
    from server.engine.conditioning import CameraPoses
    from server.engine.schedulers import make_scheduler
    from server.engine.store import ModelStore
    from server.loaders import ModelConfig

    if args.tiny:
        from support import tiny_cameractrl, tiny_models

        root = args.out / "tiny-models"
        toml = tiny_models.build(root)
        ckpt = tiny_cameractrl.write(root / "cameractrl_tiny.ckpt", tiny_models.UNET_CHANNELS)
        args.models = root / "models_cameractrl.toml"
        args.models.write_text(toml.read_text() + f'\n[camera_control.cameractrl]\nsource = "{ckpt.name}"\n')
        frames, width, height, steps = 8, 128, 64, 2
    else:
        frames, width, height, steps = 16, 384, 256, 25
    store = ModelStore(ModelConfig.load(args.models), device=args.device)
    pipe = store.pipeline("sd15", "v3")
    store.set_loras(pipe, [])
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    cc = store.camera_control("cameractrl")
    results = {}
    for move in args.moves.split(","):
        path = camera_path(move, frames, width, height)
        poses = CameraPoses(cc, lambda idx, path=path: torch.from_numpy(window_input(path, idx, height, width)[0]))
        t0 = time.perf_counter()
        video = pipe.generate(
            prompt="a living room with a sofa, a window and plants, photo",
            num_frames=frames,
            negative_prompt="blurry, low quality",
            height=height,
            width=width,
            steps=steps,
            guidance=14.0,
            generator=torch.Generator("cpu").manual_seed(args.seed),
            camera=poses,
        )
        seconds = time.perf_counter() - t0
        (args.out / move).mkdir(parents=True, exist_ok=True)
        for k, frame in enumerate(video):
            Image.fromarray(frame).save(args.out / move / f"frame_{k + 1:04d}.png")
        shifts = np.array([drift(video[k], video[k + 1]) for k in range(frames - 1)])
        dx, dy = shifts.mean(0)
        want = MOVES[move][1]
        follows = all((w == 0 and abs(v) < 0.5) or (w != 0 and np.sign(v) == w) for w, v in zip(want, (dx, dy)))
        results[move] = {
            "mean_dx_px": round(float(dx), 3),
            "mean_dy_px": round(float(dy), 3),
            "expected_sign": want,
            "follows": bool(follows),
            "seconds": round(seconds, 1),
        }
        print(move, results[move], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps(
            {"models": str(args.models), "tiny": args.tiny, "device": store.device, "results": results}, indent=1
        )
    )


if __name__ == "__main__":
    main()
