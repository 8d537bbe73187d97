"""Uploaded guides: checked before a job is queued (counts, PNG headers, then a decode one image at a time), then
kept in the job folder as the PNG files that were sent; the job decodes them when it runs."""

from __future__ import annotations

import io
from dataclasses import asdict

from PIL import Image

from ..engine.jobs import Job, write_atomic
from ..protocol import (
    FORM_DEPTH,
    FORM_INIT,
    FORM_KEYFRAME,
    FORM_NORMAL,
    FORM_POSE,
    FORM_REFERENCE,
    SpecError,
    guide_errors,
)
from ..protocol.inputs import MAX_PIXELS, check_png_header, decode_json, png_size

GUIDE_FIELDS = (FORM_DEPTH, FORM_NORMAL, FORM_POSE, FORM_KEYFRAME, FORM_REFERENCE, FORM_INIT)
IMAGE_FIELDS = (FORM_DEPTH, FORM_NORMAL, FORM_KEYFRAME, FORM_REFERENCE, FORM_INIT)
ANY_SIZE = (FORM_REFERENCE,)  # reference images are resized for the image encoder: any size up to MAX_PIXELS


MAX_PROBLEMS = 20  # of the images: a folder of wrong images answers with the first ones, not thousands


def upload_problems(spec, parts: dict[str, list[bytes]]) -> list[tuple[str, str]]:
    """(field, message) for every problem of the uploads: their counts against the spec, then each image's
    declared format and size (its header), then each image whose header is right decoded in full (one at a time,
    nothing kept), then the pose file. Blocking: runs on the executor."""
    problems = guide_errors(spec, {k: len(v) for k, v in parts.items()})
    images = []
    for name in IMAGE_FIELDS:
        for i, data in enumerate(parts.get(name, [])):
            where = f"{name}[{i}]"
            try:
                if name in ANY_SIZE:
                    png_size(data, where)
                else:
                    check_png_header(data, where, spec.width, spec.height)
            except SpecError as e:
                images += e.errors
            else:
                images += _decode_problems(spec, name, where, data)
            if len(images) >= MAX_PROBLEMS:
                break
    problems += images[:MAX_PROBLEMS]
    if parts.get(FORM_POSE):
        from ..engine import pose  # controlnet-aux is slow to import: only when a job has a pose guide

        try:
            pose.parse_frames(decode_json(parts[FORM_POSE][0], FORM_POSE), spec.frames, spec.width, spec.height)
        except SpecError as e:
            problems += e.errors
        except ValueError as e:
            problems.append((FORM_POSE, str(e)))
    return problems


def _decode_problems(spec, name: str, where: str, data: bytes) -> list[tuple[str, str]]:
    """The image decodes in full to the size its header declared (the header is checked: no decompression bomb)."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            wrong_size = name not in ANY_SIZE and image.size != (spec.width, spec.height)
            if wrong_size or image.size[0] * image.size[1] > MAX_PIXELS:
                return [(where, f"is {image.size[0]}x{image.size[1]}, the job is {spec.width}x{spec.height}")]
            image.load()
    except Exception as e:  # noqa: BLE001 - PIL raises many kinds for a corrupt file: "cannot decode"
        return [(where, f"cannot be decoded as a PNG ({type(e).__name__}); send a PNG")]
    return []


def store_submission(job: Job, parts: dict[str, list[bytes]]):
    """Write the guides as sent and the queued manifest into the job folder (blocking: executor)."""
    folder = job.folder / "guides"
    for name in IMAGE_FIELDS:
        for i, data in enumerate(parts.get(name, [])):
            write_atomic(folder / f"{name}_{i + 1:04d}.png", data)
    if parts.get(FORM_POSE):
        write_atomic(folder / "pose.json", parts[FORM_POSE][0])
    job.guide_counts = {name: len(parts[name]) for name in GUIDE_FIELDS if parts.get(name)}
    job.manifest = {
        "id": job.id,
        "status": "queued",
        "spec": asdict(job.spec),
        "seed": job.spec.seed,
        "created": job.created,
        "guides": job.guide_counts,
    }
    job.write_manifest()


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
