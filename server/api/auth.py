"""The bearer-token dependency every route carries when the server has a token."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request


def require_token(request: Request):
    token = request.app.state.settings.token
    if token is None:
        return
    given = request.headers.get("authorization", "")
    if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer <token>)")
