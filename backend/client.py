"""A blocking HTTP client for the Marionette server: standard library only, so Blender's Python can run it.

Every call blocks; the add-on runs it in a worker thread, the CLI and tests call it directly.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

from .protocol import FORM_SPEC, parse_events


class ServerError(RuntimeError):
    """The server answered with an error (`status` > 0) or could not be reached (`status` == 0)."""

    def __init__(self, status: int, message: str, detail=None):
        self.status, self.detail = status, detail
        super().__init__(message)


def _message(detail) -> str:
    if isinstance(detail, list):
        return "; ".join(f"{d.get('field')}: {d.get('message')}" for d in detail if isinstance(d, dict))
    if isinstance(detail, dict):
        return str(detail.get("message", detail))
    return str(detail)


def encode_multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """Body and content type for text fields plus (field, filename, bytes) file parts, in order."""
    boundary = "marionette-" + uuid.uuid4().hex
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.append(value.encode() + b"\r\n")
    for name, filename, data in files:
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        out.append(data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class Client:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout: float | None = None,
        headers: dict | None = None,
    ):
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        for k, v in (headers or {}).items():
            request.add_header(k, v)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read() or b"null").get("detail")
            except (ValueError, AttributeError):
                detail = e.reason
            raise ServerError(e.code, f"server answered {e.code}: {_message(detail)}", detail) from None
        except (urllib.error.URLError, OSError) as e:
            raise ServerError(
                0, f"cannot reach the Marionette server at {self.url}: {getattr(e, 'reason', e)}"
            ) from None

    def _json(self, method: str, path: str, payload=None):
        body = None if payload is None else json.dumps(payload).encode()
        with self._request(method, path, body, "application/json" if body is not None else None) as r:
            return json.loads(r.read())

    def health(self) -> dict:
        return self._json("GET", "/health")

    def models(self) -> dict:
        return self._json("GET", "/models")

    def download(self, kind: str, name: str) -> dict:
        """Start fetching a configured hub model into the server's Hugging Face cache (resumes a cut-off one)."""
        return self._json("POST", f"/models/{kind}/{name}/download")

    def download_status(self, kind: str, name: str) -> dict:
        return self._json("GET", f"/models/{kind}/{name}/download")

    def cancel_download(self, kind: str, name: str) -> dict:
        return self._json("DELETE", f"/models/{kind}/{name}/download")

    def plan(self, spec: dict, wait_for_hashes: bool = False) -> dict:
        """What the spec resolves to. The server answers at once, listing file hashes it has not computed yet under
        `sha256_pending`; `wait_for_hashes` waits for them (a fingerprint of the models needs them)."""
        return self._json("POST", "/plan?hashes=wait" if wait_for_hashes else "/plan", spec)

    def status(self, job_id: str) -> dict:
        return self._json("GET", f"/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict:
        return self._json("DELETE", f"/jobs/{job_id}")

    def release(self) -> dict:
        return self._json("POST", "/release")

    def submit(self, spec: dict, guides: dict[str, list[bytes]] | None = None) -> str:
        """Send a job: the spec and its guide files (form field -> list of file bytes, in frame order)."""
        files = [
            (name, f"{name}_{i:04d}", data) for name, items in (guides or {}).items() for i, data in enumerate(items)
        ]
        body, content_type = encode_multipart({FORM_SPEC: json.dumps(spec)}, files)
        with self._request("POST", "/jobs", body, content_type) as r:
            return json.loads(r.read())["id"]

    def events(self, job_id: str, after: int = 0) -> Iterator[tuple[int, str, dict]]:
        """The job's events as (id, type, data), from after `after`, until its final event."""
        headers = {"Last-Event-ID": str(after)} if after else None
        with self._request("GET", f"/jobs/{job_id}/events", timeout=120.0, headers=headers) as r:
            yield from parse_events(line.decode() for line in r)

    def draw_pose(self, frame: dict, width: int, height: int) -> bytes:
        """PNG of one OpenPose frame ({"people": [...]}) drawn by the server as it draws a job's pose guide."""
        body = json.dumps({"width": width, "height": height, "people": frame.get("people", [])}).encode()
        with self._request("POST", "/pose/draw", body, "application/json") as r:
            return r.read()

    def fetch(self, path: str) -> bytes:
        """Bytes at a path the server handed out (a frame or preview URL)."""
        with self._request("GET", path) as r:
            return r.read()
