"""POST /plan: what a spec resolves to, without generating."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..engine.planning import plan
from ..protocol import parse_spec
from .blocking import off_loop
from .checks import check_models, json_body
from .errors import public

router = APIRouter()


def _checked_plan(models, spec, store):
    check_models(models, spec)  # may read a checkpoint's keys
    return plan(spec, store).to_dict()  # hashes local files (cached) and draws the camera plot


@router.post("/plan")
async def plan_route(request: Request):
    spec = parse_spec(await json_body(request, "spec"))
    state = request.app.state
    answer = await off_loop(request, _checked_plan, state.settings.models, spec, state.store)
    plot = answer.pop("plot_png", None)  # base64 has slashes: it is not text whose paths could be hidden
    return {**public(answer), "plot_png": plot}
