"""GIF/MP4 through the ffmpeg that the imageio-ffmpeg package ships, when Blender's Python has it."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


def write_video(frames_dir: Path, fps: float, out: Path):
    """`out` ending .mp4 (H.264, on black) or .gif (palette per clip, transparent background, looping)."""
    exe = ffmpeg()
    if exe is None:
        raise RuntimeError(
            "GIF/MP4 need the imageio-ffmpeg package in Blender's Python "
            "(the frames and sprite sheets are written without it)"
        )
    args = [exe, "-y", "-loglevel", "error", "-framerate", f"{fps:g}", "-i", str(frames_dir / "frame_%04d.png")]
    if out.suffix == ".gif":
        args += [
            "-vf",
            "split[a][b];[a]palettegen=reserve_transparent=1[p];[b][p]paletteuse=alpha_threshold=128",
            "-loop",
            "0",
        ]
    else:
        args += [
            "-vf",
            "format=rgba,premultiply=inplace=1,scale=trunc(iw/2)*2:trunc(ih/2)*2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ]
    done = subprocess.run(args + [str(out)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {out}: {done.stderr.strip()}")
