"""Uploaded guides: checked before a job is queued (PNG headers first, then a decode one image at a time), then
kept in the job folder as the PNG files that were sent; the job decodes them when it runs."""

from __future__ import annotations

import io
from dataclasses import asdict

from PIL import Image

from ..engine.jobs import Job, write_atomic
from ..protocol import FORM_DEPTH, FORM_INIT, FORM_KEYFRAME, FORM_NORMAL, FORM_POSE, FORM_REFERENCE, SpecError
from ..protocol.inputs import MAX_PIXELS, check_png_header, decode_json, png_size

GUIDE_FIELDS = (FORM_DEPTH, FORM_NORMAL, FORM_POSE, FORM_KEYFRAME, FORM_REFERENCE, FORM_INIT)
IMAGE_FIELDS = (FORM_DEPTH, FORM_NORMAL, FORM_KEYFRAME, FORM_REFERENCE, FORM_INIT)
ANY_SIZE = (FORM_REFERENCE,)  # reference images are resized for the image encoder: any size up to MAX_PIXELS


def check_headers(spec, parts: dict[str, list[bytes]]):
    """The declared format and size of every image, from its header alone (cheap: runs on the event loop)."""
    errors = []
    for name in IMAGE_FIELDS:
        for i, data in enumerate(parts.get(name, [])):
            try:
                if name in ANY_SIZE:
                    png_size(data, f"{name}[{i}]")
                else:
                    check_png_header(data, f"{name}[{i}]", spec.width, spec.height)
            except SpecError as e:
                errors += e.errors
    if errors:
        raise SpecError(errors[:20])


def check_decodes(spec, parts: dict[str, list[bytes]]):
    """Each image decodes in full, and the pose file is valid; nothing decoded is kept (blocking: executor)."""
    for name in IMAGE_FIELDS:
        for i, data in enumerate(parts.get(name, [])):
            where = f"{name}[{i}]"
            try:
                with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                    wrong_size = name not in ANY_SIZE and image.size != (spec.width, spec.height)
                    if wrong_size or image.size[0] * image.size[1] > MAX_PIXELS:
                        raise SpecError(
                            [(where, f"is {image.size[0]}x{image.size[1]}, the job is {spec.width}x{spec.height}")]
                        )
                    image.load()
            except SpecError:
                raise
            except Exception as e:  # noqa: BLE001 - PIL raises many kinds for a corrupt file: "cannot decode"
                raise SpecError([(where, f"cannot be decoded as a PNG ({type(e).__name__}); send a PNG")]) from None
    if parts.get(FORM_POSE):
        from ..engine import (
            pose,  # controlnet-aux is slow to import: only when a job has a pose guide
        )

        try:
            pose.parse_frames(decode_json(parts[FORM_POSE][0], FORM_POSE), spec.frames, spec.width, spec.height)
        except ValueError as e:  # SpecError is one
            raise (e if isinstance(e, SpecError) else SpecError([(FORM_POSE, str(e))])) from None


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
