"""POST /plan: what a spec resolves to, without generating."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from ..engine.planning import plan
from ..protocol import parse_spec
from .checks import check_models, json_body

router = APIRouter()


@router.post("/plan")
async def plan_route(request: Request):
    spec = parse_spec(await json_body(request, "spec"))
    await asyncio.to_thread(check_models, request.app.state.settings.models, spec)  # may read a checkpoint's keys
    return plan(spec, request.app.state.store).to_dict()
