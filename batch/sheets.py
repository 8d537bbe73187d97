"""RGBA sprite sheets with TexturePacker / Aseprite style JSON ("JSON hash"): what Phaser, Pixi and most engine
importers read. One row per direction; trimmed sheets pack each frame's opaque box only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..backend.png import write_png


def opaque_box(alpha: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the pixels with alpha > 0; a fully transparent frame keeps one pixel."""
    ys, xs = np.nonzero(alpha)
    if len(xs) == 0:
        return 0, 0, 1, 1
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def build(
    rows: list[dict], out_png: Path, fps: float, loop: bool, meta: dict, trim: bool = False, columns: int | None = None
) -> dict:
    """Write the sheet and `<name>.json`; returns the JSON data.

    rows: per direction {"name", "frames": [H×W×4 uint8], "pivots": [(x, y) px], "yaw"}. A single row wraps
    into `columns` (default near-square); several rows stay one per direction.
    """
    h, w = rows[0]["frames"][0].shape[:2]
    duration = round(1000 / fps)
    cells = []  # (row name, index, image, pivot, grid row, grid column)
    for r, row in enumerate(rows):
        per_row = len(row["frames"]) if len(rows) > 1 else (columns or math.ceil(math.sqrt(len(row["frames"]))))
        for i, (image, pivot) in enumerate(zip(row["frames"], row["pivots"])):
            gr, gc = divmod(i, per_row)
            cells.append((row["name"], i, image, pivot, r + gr if len(rows) > 1 else gr, gc))
    placed, x, y, line, line_h, width = [], 0, 0, None, 0, 0
    for name, i, image, pivot, gr, gc in cells:
        box = opaque_box(image[:, :, 3]) if trim else (0, 0, w, h)
        if trim:
            if line is not None and gr != line:
                x, y, line_h = 0, y + line_h, 0
            line = gr
            at = (x, y)
            x += box[2]
            line_h = max(line_h, box[3])
        else:
            at = (gc * w, gr * h)
        width = max(width, at[0] + box[2])
        placed.append((name, i, image, pivot, box, at))
    height = max(at[1] + box[3] for *_, box, at in placed)
    sheet = np.zeros((height, width, 4), dtype=np.uint8)
    frames, animations = {}, {}
    for name, i, image, pivot, (bx, by, bw, bh), (ax, ay) in placed:
        sheet[ay : ay + bh, ax : ax + bw] = image[by : by + bh, bx : bx + bw]
        key = f"{name}/{i + 1:04d}"
        point = {"x": round(pivot[0] / w, 5), "y": round(pivot[1] / h, 5)}  # of sourceSize, y down
        frames[key] = {
            "frame": {"x": ax, "y": ay, "w": bw, "h": bh},
            "rotated": False,
            "trimmed": trim,
            "spriteSourceSize": {"x": bx, "y": by, "w": bw, "h": bh},
            "sourceSize": {"w": w, "h": h},
            "duration": duration,
            "pivot": point,
            "anchor": point,
        }  # Phaser reads either, Pixi anchor
        animations.setdefault(name, []).append(key)
    write_png(out_png, sheet)
    tags, k = [], 0
    for name, keys in animations.items():
        tags.append({"name": name, "from": k, "to": k + len(keys) - 1, "direction": "forward"})
        k += len(keys)
    data = {
        "frames": frames,
        "animations": animations,
        "meta": {
            "app": "Marionette",
            "image": out_png.name,
            "format": "RGBA8888",
            "size": {"w": width, "h": height},
            "scale": "1",
            "fps": fps,
            "loop": loop,
            "frameTags": tags,
            "directions": [{"name": r["name"], "yaw": r["yaw"]} for r in rows],
            **meta,
        },
    }
    out_png.with_suffix(".json").write_text(json.dumps(data, indent=2))
    return data
