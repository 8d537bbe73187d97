"""Sprite sheets (numpy + the add-on's PNG codec) and GIF/MP4 through the ffmpeg that imageio-ffmpeg ships."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np

from backend.png import read_png, write_png


def sprite_sheet(frames: list[Path], out_png: Path, columns: int | None = None) -> dict:
    """A grid PNG of the frames plus `<name>.json` with each frame's rectangle; returns the JSON data."""
    images = [read_png(f) for f in frames]
    h, w = images[0].shape[:2]
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    sheet = np.zeros((rows * h, columns * w, images[0].shape[2]), dtype=np.uint8)
    rects = []
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = image
        rects.append({"frame": k, "file": frames[k].name, "x": c * w, "y": r * h, "w": w, "h": h})
    write_png(out_png, sheet)
    data = {"image": out_png.name, "size": [columns * w, rows * h], "frame_size": [w, h], "columns": columns,
            "rows": rows, "frames": rects}
    out_png.with_suffix(".json").write_text(json.dumps(data, indent=2))
    return data


def ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


def write_video(frames_dir: Path, fps: float, out: Path):
    """`out` ending .mp4 (H.264) or .gif (palette per clip, looping) from frames_dir/frame_%04d.png."""
    exe = ffmpeg()
    if exe is None:
        raise RuntimeError("GIF/MP4 need the imageio-ffmpeg package (pip install imageio-ffmpeg)")
    args = [exe, "-y", "-loglevel", "error", "-framerate", f"{fps:g}", "-i", str(frames_dir / "frame_%04d.png")]
    if out.suffix == ".gif":
        args += ["-vf", "split[a][b];[a]palettegen[p];[b][p]paletteuse", "-loop", "0"]
    else:
        args += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2"]
    done = subprocess.run(args + [str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {out}: {done.stderr.strip()}")
