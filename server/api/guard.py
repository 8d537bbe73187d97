"""Who may drive the server, checked before any route runs: the Host names it is bound to (DNS rebinding), no
foreign Origin (a web page in the artist's browser), the bearer token on every route (docs included), and no
body a page can send without asking first (a form or text/plain) except the multipart upload of POST /jobs.
Also logs every request that fails (status >= 400) to the `marionette` log.
"""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import urlsplit

from ..log import log

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
# The content types an HTML page may POST without a CORS preflight.
SIMPLE_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
UPLOAD_ROUTES = {("POST", "/jobs"): "multipart/form-data"}


def host_name(value: str) -> tuple[str, str]:
    """(name, port) of a Host header value: "127.0.0.1:7860" -> ("127.0.0.1", "7860"), "[::1]:80" -> ("::1", "80")."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        return name, rest.lstrip(":")
    name, _, port = value.partition(":")
    return name, port


class Guard:
    """ASGI middleware. `hosts`: extra names the server answers to besides its bound host and loopback."""

    def __init__(self, app, settings):
        self.app, self.settings = app, settings
        bound = (settings.host or "").strip("[]").lower()
        self.any_host = bound in WILDCARD_HOSTS  # bound to every interface: the token (required) guards it
        self.hosts = LOOPBACK_NAMES | {bound} | {h.lower() for h in settings.allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self.refusal(scope["method"], scope["path"], headers, scope.get("scheme", "http"))
        status_seen = {}

        async def watched_send(message):
            if message["type"] == "http.response.start":
                status_seen["status"] = message["status"]
            elif (
                message["type"] == "http.response.body"
                and status_seen.get("status", 200) >= 400
                and "detail" not in status_seen
            ):
                status_seen["detail"] = message.get("body", b"")[:300].decode("utf-8", "replace")
            await send(message)

        started = time.perf_counter()
        if refusal is not None:
            status, detail = refusal
            await _answer(watched_send, status, detail)
        else:
            await self.app(scope, receive, watched_send)
        status = status_seen.get("status", 0)
        if status >= 400 and status != 500:  # a 500 is logged with its traceback by the error handler
            log.warning(
                "%s %s -> %d in %.0f ms: %s",
                scope["method"],
                scope["path"],
                status,
                1000 * (time.perf_counter() - started),
                status_seen.get("detail", ""),
            )

    def refusal(self, method: str, path: str, headers: dict, scheme: str) -> tuple[int, str] | None:
        name, _port = host_name(headers.get("host", ""))
        if not self.any_host and name not in self.hosts:
            return 421, (
                f"this server does not answer to the host name {name!r} (it answers to "
                f"{', '.join(sorted(self.hosts))}); start it with --allow-host {name} if that is meant"
            )
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            same = parts.scheme == scheme and parts.netloc.lower() == headers.get("host", "").lower()
            if not same:
                return 403, (
                    f"requests from web pages ({origin[:100]}) are refused; only the Blender add-on and "
                    f"clients on this machine drive this server"
                )
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return 403, "requests from web pages of other sites are refused"
        token = self.settings.token
        if token is not None:
            given = headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return 401, "missing or wrong bearer token (Authorization: Bearer <token>)"
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in SIMPLE_TYPES and UPLOAD_ROUTES.get((method, path)) != content_type:
            allowed = UPLOAD_ROUTES.get((method, path))
            return 415, (
                f"{content_type} bodies are refused here; send application/json" + (f" or {allowed}" if allowed else "")
            )
        return None


async def _answer(send, status: int, detail: str):
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
