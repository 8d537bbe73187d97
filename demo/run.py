"""`make demo`: a short animation generated from depth and normal guides, through the real server.

Until the Blender demo scene lands, the guides are computed here analytically (a ball rolling across a floor, seen
by a fixed camera) in exactly the encodings Marionette's capture produces: depth as inverse depth normalised over
the whole clip, normals in camera space with the BAE encoding. The server runs on tiny random models, so the frames
show the path working, not a picture.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend import launcher  # noqa: E402
from backend.client import Client  # noqa: E402


def ball_guides(frames: int, size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Depth and normal guides of a unit ball rolling left to right 5 m in front of a pinhole camera over a floor."""
    f = size * 1.2
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    rays = np.stack([(xs - size / 2) / f, (ys - size / 2) / f, np.ones_like(xs)], -1)   # OpenCV camera axes
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    zs, normals = [], []
    for k in range(frames):
        centre = np.array([-1.5 + 3.0 * k / max(frames - 1, 1), 0.3, 5.0])
        # ray-sphere hit; the floor is the plane y = 1.3 (below the camera, OpenCV y points down)
        b = rays @ centre
        disc = b ** 2 - (centre @ centre - 1.0)
        t_ball = np.where(disc > 0, b - np.sqrt(np.maximum(disc, 0)), np.inf)
        t_floor = np.where(rays[..., 1] > 1e-6, 1.3 / np.maximum(rays[..., 1], 1e-6), np.inf)
        t = np.minimum(t_ball, t_floor)
        hit = rays * t[..., None]
        n = np.where((t_ball <= t_floor)[..., None], hit - centre, np.array([0.0, -1.0, 0.0]))
        zs.append(np.where(np.isfinite(t), hit[..., 2], np.inf))
        normals.append(n)
    finite = np.concatenate([z[np.isfinite(z)] for z in zs])
    near, far = 1 / finite.max(), 1 / finite.min()
    depth = [np.where(np.isfinite(z), (1 / z - near) / (far - near), 0.0) for z in zs]
    depth = [(np.repeat(d[..., None], 3, -1) * 255).round().astype(np.uint8) for d in depth]
    # BAE: rgb = ((-x, y, z) + 1) / 2 in Blender camera axes, which are OpenCV's (x, -y, -z)
    normal = [np.where(np.isfinite(z)[..., None], ((-n + 1) / 2 * 255).round().clip(0, 255), (128, 128, 255))
              .astype(np.uint8) for n, z in zip(normals, zs)]
    return depth, normal


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def contact_sheet(rows: list[list[np.ndarray]]) -> np.ndarray:
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args(argv)
    out = args.out
    (out / "frames").mkdir(parents=True, exist_ok=True)

    depth, normal = ball_guides(args.frames, args.size)
    print(f"starting the server on tiny models (log: {out / 'server.log'}) ...", flush=True)
    server = launcher.start(args=["--tiny", "--port", "0", "--data", str(out / "server")], log=out / "server.log")
    try:
        client = Client(server.url)
        spec = {"prompt": "a red ball rolling across a wooden floor, studio light", "seed": 42, "steps": args.steps,
                "width": args.size, "height": args.size, "frames": args.frames, "base": "sd15",
                "motion_module": "v2", "motion_loras": [{"name": "pan_right", "weight": 0.6}],
                "controlnets": [{"kind": "depth", "weight": 1.0}, {"kind": "normal", "weight": 0.6}]}
        start = time.perf_counter()
        job = client.submit(spec, {"depth": [png(d) for d in depth], "normal": [png(n) for n in normal]})
        frames = {}
        for _, kind, data in client.events(job):
            if kind == "step":
                print(f"  step {data['i']}/{data['n']}", flush=True)
            elif kind == "frame":
                frames[data["index"]] = client.fetch(data["url"])
                (out / "frames" / f"frame_{data['index'] + 1:04d}.png").write_bytes(frames[data["index"]])
            elif kind in ("error", "cancelled"):
                sys.exit(f"the job ended with {kind}: {data.get('message')}")
            elif kind == "done":
                (out / "manifest.json").write_bytes(client.fetch(data["manifest"]))
        images = [np.asarray(Image.open(io.BytesIO(frames[i])).convert("RGB")) for i in sorted(frames)]
        pil = [Image.fromarray(im) for im in images]
        pil[0].save(out / "animation.gif", save_all=True, append_images=pil[1:], duration=1000 // 8, loop=0)
        Image.fromarray(contact_sheet([depth, normal, images])).save(out / "contact_sheet.png")
        print(f"done in {time.perf_counter() - start:.1f} s: {len(images)} frames, animation.gif, "
              f"contact_sheet.png (depth / normal / frames) and manifest.json in {out}")
        print(json.dumps(json.loads((out / "manifest.json").read_text())["timings"]))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
