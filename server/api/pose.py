"""POST /pose/draw: one OpenPose frame drawn as a job's pose guide is, for the add-on's Preview Guides."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..protocol import LIMITS, SpecError
from .checks import json_body
from .guides import draw_pose_png

router = APIRouter()


@router.post("/pose/draw")
async def pose_draw(request: Request):
    """One OpenPose frame {"width", "height", "people"} drawn as a job's pose guide is: a PNG."""
    data = await json_body(request, "pose", "{\"width\", \"height\", \"people\": [...]}")
    if not isinstance(data, dict):
        raise SpecError([("pose", "body must be an object: {\"width\", \"height\", \"people\": [...]}")])
    lo, hi = LIMITS["size"]
    for name in ("width", "height"):
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise SpecError([(name, f"must be an integer between {lo} and {hi}, got {value!r}")])
    return Response(await asyncio.to_thread(draw_pose_png, data), media_type="image/png")
