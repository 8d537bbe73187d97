"""The generated frames as an image strip in the scene's sequencer (compositing.import_result's SEQUENCER target).

One strip, tagged, updated in place: a later import of the same job appends the frames that arrived since (one
element each) instead of building the strip again.
"""

from __future__ import annotations

import os

import bpy

from .frame_files import TAG, blend_path, check_frame_start, check_frames, display_colorspace
from .protocol import frame_filename


def strips_of(editor):
    """Top-level strips: `strips` in 5.0 (and 4.4+), `sequences` before."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def free_channel(strips, start, end, prefer=None):
    """`prefer` when no strip overlaps frames [start, end) on it, else the lowest such channel."""
    used = {s.channel for s in strips if s.frame_final_start < end and s.frame_final_end > start}
    return next(c for c in ([prefer] if prefer else []) + list(range(1, 129)) if c not in used)


def place_in_sequencer(scene, folder, count, frame_start, channel=None):
    """An image strip of frames 1..count from `frame_start`, replacing the strip a previous import made.

    Without `channel` it goes where the previous strip was if nothing else lies there, else on the lowest free
    channel. When the previous strip already shows the first frames of this sequence, the new frames are appended
    to it instead.
    """
    folder = check_frames(folder, count)
    check_frame_start(frame_start)
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = strips_of(editor)
    previous = [s for s in strips if s.get(TAG)]
    if len(previous) == 1 and channel in (None, previous[0].channel):
        strip = previous[0]
        if _extends(strips, strip, folder, count, frame_start, display_colorspace(scene)):
            for i in range(len(strip.elements), count):
                strip.elements.append(frame_filename(i))
            strip.invalidate_cache("RAW")  # a preview cached at the new frames showed what lay under the strip
            return strip
    kept = previous[0].channel if previous else None
    for strip in previous:
        strips.remove(strip)
    if channel is None:
        channel = free_channel(strips, frame_start, frame_start + count, prefer=kept)

    strip = strips.new_image(
        "Marionette", os.path.join(folder, frame_filename(0)), channel, int(frame_start), fit_method="FIT"
    )  # job frames are often smaller than the render size
    for i in range(1, count):
        strip.elements.append(frame_filename(i))
    strip.directory = os.path.join(blend_path(folder), "")  # Blender keeps strip folders with a trailing slash
    strip.colorspace_settings.name = display_colorspace(scene)
    strip[TAG] = True
    return strip


def _extends(strips, strip, folder, count, frame_start, colorspace) -> bool:
    """`strip` shows frames 1..n (n < count) of `folder` from `frame_start`, untrimmed, and nothing else on its
    channel lies where frames n+1..count would go."""
    shown = len(strip.elements)
    if not (
        strip.type == "IMAGE"
        and 0 < shown < count
        and strip.frame_start == frame_start
        and strip.frame_final_start == frame_start
        and strip.frame_final_duration == shown
        and strip.elements[-1].filename == frame_filename(shown - 1)
        and strip.colorspace_settings.name == colorspace
        and os.path.abspath(bpy.path.abspath(strip.directory)) == folder
    ):
        return False
    end, new_end = frame_start + shown, frame_start + count
    return not any(
        s != strip and s.channel == strip.channel and s.frame_final_start < new_end and s.frame_final_end > end
        for s in strips
    )
