"""Uploaded guides: decoded and checked before a job is queued, kept in the job folder beside its frames."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..protocol import FORM_DEPTH, FORM_KEYFRAME, FORM_NORMAL, FORM_POSE, SpecError

GUIDE_FIELDS = (FORM_DEPTH, FORM_NORMAL, FORM_POSE, FORM_KEYFRAME)


def _decode_png(data: bytes, where: str, width: int, height: int) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise SpecError([(where, f"cannot be decoded as an image ({e.__class__.__name__}); send a PNG")]) from None
    if image.size != (width, height):
        raise SpecError([(where, f"is {image.size[0]}x{image.size[1]}, the job is {width}x{height}")])
    return np.asarray(image.convert("RGB"))


def decode_guides(spec, parts: dict[str, list[bytes]]) -> dict[str, list[np.ndarray]]:
    """Decode and check every uploaded guide; the openpose guide is drawn from its keypoints here."""
    guides = {}
    for name in (FORM_DEPTH, FORM_NORMAL):
        if parts.get(name):
            guides[name] = [_decode_png(d, f"{name}[{i}]", spec.width, spec.height) for i, d in enumerate(parts[name])]
    if parts.get(FORM_POSE):
        from ..engine import pose  # controlnet-aux is slow to import: only when a job has a pose guide

        try:
            people = pose.parse_frames(json.loads(parts[FORM_POSE][0]), spec.frames, spec.width, spec.height)
        except ValueError as e:
            raise SpecError([(FORM_POSE, str(e))]) from None
        guides["openpose"] = [pose.draw(p, spec.width, spec.height) for p in people]
    if parts.get(FORM_KEYFRAME):
        guides["keyframe"] = [_decode_png(d, f"keyframe[{i}]", spec.width, spec.height)
                              for i, d in enumerate(parts[FORM_KEYFRAME])]
    return guides


def draw_pose_png(data: dict) -> bytes:
    from ..engine import pose

    width, height = data["width"], data["height"]
    try:
        people = pose.parse_frames([{"people": data.get("people")}], 1, width, height)[0]
    except ValueError as e:
        raise SpecError([("pose", str(e))]) from None
    buf = io.BytesIO()
    Image.fromarray(pose.draw(people, width, height)).save(buf, format="PNG")
    return buf.getvalue()


def save_guides(folder: Path, guides: dict[str, list[np.ndarray]], parts: dict[str, list[bytes]]):
    """Keep the guides beside the frames so any result can be re-run from its folder."""
    for name, images in guides.items():
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{name}_{i + 1:04d}.png")
    if parts.get(FORM_POSE):
        (folder / "pose.json").write_bytes(parts[FORM_POSE][0])
