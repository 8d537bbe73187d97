"""POST /plan: what a spec resolves to, without generating."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..engine.planning import plan
from ..protocol import SpecError, parse_spec
from .blocking import off_loop
from .checks import json_body
from .errors import public
from .spec_checks import check_spec

router = APIRouter()


def _checked_plan(models, spec, store, wait: bool):
    check_spec(models, spec)  # may read a checkpoint's keys
    # Draws the camera plot. Without `wait`, answers at once: file hashes not known yet are listed as
    # sha256_pending and computed in the background (a job records them when it finishes).
    return plan(spec, store, wait).to_dict()


@router.post("/plan")
async def plan_route(request: Request, hashes: str | None = None):
    if hashes not in (None, "wait"):
        raise SpecError([("hashes", f"{hashes[:40]!r}: leave it out (answer at once) or send hashes=wait")])
    spec = parse_spec(await json_body(request, "spec"))
    state = request.app.state
    answer = await off_loop(request, _checked_plan, state.settings.models, spec, state.store, hashes == "wait")
    plot = answer.pop("plot_png", None)  # base64 has slashes: it is not text whose paths could be hidden
    return {**public(answer), "plot_png": plot}
