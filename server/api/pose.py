"""POST /pose/draw: one OpenPose frame drawn as a job's pose guide is, for the add-on's Preview Guides."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..protocol import LIMITS, SpecError
from .blocking import off_loop
from .checks import json_body
from .guides import draw_pose_png

router = APIRouter()
SHAPE = '{"width", "height", "people": [...]}'


@router.post("/pose/draw")
async def pose_draw(request: Request):
    """One OpenPose frame {"width", "height", "people"} drawn as a job's pose guide is: a PNG."""
    data = await json_body(request, "pose", SHAPE)
    if not isinstance(data, dict):
        raise SpecError([("pose", f"body must be an object: {SHAPE}")])
    unknown = sorted(set(data) - {"width", "height", "people"})
    if unknown:
        raise SpecError([(unknown[0][:40], f"unknown field; the body is {SHAPE}")])
    lo, hi = LIMITS["size"]
    for name in ("width", "height"):
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise SpecError([(name, f"must be an integer between {lo} and {hi}, got {value!r}")])
    return Response(await off_loop(request, draw_pose_png, data), media_type="image/png")
