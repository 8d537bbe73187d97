"""Test support: guide images and multipart job requests, as any client would send them."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

SIZE = 64


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def gradient_frames(frames: int, size: int = SIZE, seed: int = 0) -> list[bytes]:
    """A moving gradient: a stand-in depth/normal sequence with structure the ControlNet can see."""
    rng = np.random.default_rng(seed)
    out = []
    ys, xs = np.mgrid[0:size, 0:size]
    for f in range(frames):
        v = ((xs + ys + 4 * f) % size) * (255 / size)
        image = np.stack([v, np.flipud(v), rng.uniform(0, 255, (size, size))], -1)
        out.append(png(image))
    return out


def tiny_spec(**over) -> dict:
    spec = {
        "prompt": "a wooden marionette dancing",
        "negative_prompt": "blurry",
        "seed": 7,
        "steps": 3,
        "guidance": 7.5,
        "width": SIZE,
        "height": SIZE,
        "frames": 4,
        "base": "sd15",
        "motion_module": "v2",
    }
    spec.update(over)
    return spec


def multipart(spec: dict, **guides: list[bytes]):
    """(data, files) for httpx: the spec as a text field and each guide image as a repeated file part."""
    files = []
    for name, items in guides.items():
        for i, item in enumerate(items):
            files.append((name, (f"{name}_{i:04d}.png", item, "application/octet-stream")))
    return {"spec": json.dumps(spec)}, files


def read_events(response) -> list[tuple[int, str, dict]]:
    from server.protocol import parse_events

    return list(parse_events(response.iter_lines()))
