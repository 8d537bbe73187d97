"""Beauty renders of chosen frames (SparseCtrl RGB keyframes) with the scene's own engine and settings."""

from __future__ import annotations

from .beauty import iter_renders


def render_keyframes(scene, frames, out_dir) -> list[str]:
    """Render each scene frame in `frames` as `keyframe_0001.png`, ... (see `iter_keyframes`)."""
    paths: list[str] = []
    for _ in iter_keyframes(scene, frames, out_dir, paths):
        pass
    return paths


def iter_keyframes(scene, frames, out_dir, paths: list):
    """Render each scene frame in `frames` as `keyframe_0001.png`, ... (numbered by position) at the render size.

    Only the output path and file format change for the duration; the engine, samples, colour management and
    compositing are the scene's own. One render per step: yields (done, total, frame); `paths` gets the files.
    """
    yield from iter_renders(scene, frames, out_dir, paths, "keyframe")
