"""How failures answer: a client's mistake is a 4xx naming what to fix, a broken model file a 409 naming the file,
a full disk a 507, and anything else a 500 whose error id is in server.log beside the traceback. No answer shows
an absolute path of the server's machine.
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..engine.jobs import is_disk_full
from ..loaders import CheckpointError
from ..log import log_exception
from ..protocol import SpecError

# An absolute POSIX path or a Windows drive path, up to a quote, a colon followed by a space, or whitespace; not
# the server's own URLs (/jobs/...), which events and answers hand out.
_ABSOLUTE = re.compile(r"(?<![\w.])(?!/jobs/)(?:[A-Za-z]:[\\/]|/)(?:[^\s'\"():,]+[\\/])+([^\s'\"():,/\\]*)")


def hide_paths(text: str) -> str:
    """`/home/me/models/mm.ckpt: corrupt` -> `mm.ckpt: corrupt`: the name a user recognises, not the layout."""
    return _ABSOLUTE.sub(lambda m: m.group(1) or "(folder)", text)


def public(value):
    """A JSON-able value with every string's absolute paths hidden."""
    if isinstance(value, str):
        return hide_paths(value)
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items()}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


def spec_error_response(errors, details=None) -> JSONResponse:
    """422 with one {"field", "message"} item per error; `details` (one dict per error) adds keys to each item."""
    items = [{"field": f, "message": hide_paths(m)} for f, m in errors]
    for item, extra in zip(items, details or (), strict=False):
        item.update(public(extra))
    return JSONResponse(status_code=422, content={"detail": items})


def checkpoint_error_response(exc: CheckpointError, kind: str | None = None, name: str | None = None):
    detail = {"message": hide_paths(str(exc)), "hint": "replace or re-download the file, or fix the model config"}
    if kind is not None:
        detail.update(kind=kind, name=name)
    return JSONResponse(status_code=409, content={"detail": detail})


def disk_full_response(exc: OSError) -> JSONResponse:
    return JSONResponse(
        status_code=507,
        content={
            "detail": f"the disk of the server's data folder is full "
            f"({exc.strerror}); free space there or start the "
            f"server with another --data folder"
        },
    )


def install(app: FastAPI):
    @app.exception_handler(SpecError)
    async def spec_error(_request, exc: SpecError):
        return spec_error_response(exc.errors, getattr(exc, "details", None))

    @app.exception_handler(RequestValidationError)
    async def request_validation(_request, exc: RequestValidationError):
        return spec_error_response(
            [(".".join(str(p) for p in e.get("loc", ())), str(e.get("msg"))) for e in exc.errors()]
        )

    @app.exception_handler(CheckpointError)
    async def checkpoint_error(_request, exc: CheckpointError):
        return checkpoint_error_response(exc, getattr(exc, "kind", None), getattr(exc, "name", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        if is_disk_full(exc):
            log_exception(f"{request.method} {request.url.path}", exc)
            return disk_full_response(exc)
        error_id = log_exception(f"{request.method} {request.url.path}", exc)
        return JSONResponse(
            status_code=500,
            content={
                "detail": f"internal server error {error_id}: this is a bug in the server, not in the request; the "
                f"traceback is in the server's server.log under this id",
                "error_id": error_id,
            },
        )
