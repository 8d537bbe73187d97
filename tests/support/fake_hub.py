"""A local imitation of the Hugging Face Hub's file endpoints, for download tests with no network.

It answers what huggingface_hub asks: `GET /api/models/{repo}` (the file listing with sizes), `HEAD` and `GET`
`/{repo}/resolve/{revision}/{file}` (commit and ETag headers, `Range` requests). `cut[file] = n` makes the next
whole-file GET send only n bytes and drop the connection, with every GET refused (503) until `heal()`: a download
cut off mid-file. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.cut: dict[str, int] = {}
        self.broken = False
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub._serve(self, body=False)

            def do_GET(self):
                hub._serve(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @classmethod
    def from_folders(cls, folders: dict[str, Path]) -> FakeHub:
        return cls(
            {
                repo: {
                    str(p.relative_to(root)).replace("\\", "/"): p.read_bytes()
                    for p in sorted(Path(root).rglob("*"))
                    if p.is_file()
                }
                for repo, root in folders.items()
            }
        )

    def heal(self):
        self.broken = False

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, handler, body: bool):
        path = unquote(urlsplit(handler.path).path)
        self.requests.append((handler.command, path, handler.headers.get("Range")))
        if path.startswith("/api/models/"):
            repo = path[len("/api/models/") :].split("/revision/")[0]
            if repo not in self.repos:
                return self._send(handler, 404, b'{"error": "Repository not found"}', body)
            listing = {
                "id": repo,
                "sha": COMMIT,
                "siblings": [{"rfilename": name, "size": len(data)} for name, data in sorted(self.repos[repo].items())],
            }
            return self._send(handler, 200, json.dumps(listing).encode(), body, {"Content-Type": "application/json"})
        for repo, files in self.repos.items():
            prefix = f"/{repo}/resolve/"
            if path.startswith(prefix):
                name = path[len(prefix) :].split("/", 1)[1]
                if name not in files:
                    return self._send(
                        handler,
                        404,
                        b"Entry not found",
                        body,
                        {"X-Repo-Commit": COMMIT, "X-Error-Code": "EntryNotFound"},
                    )
                return self._file(handler, name, files[name], body)
        self._send(handler, 404, b"Repository not found", body, {"X-Error-Code": "RepoNotFound"})

    def _file(self, handler, name: str, data: bytes, body: bool):
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if not body:
            return self._send(handler, 200, data, False, headers)
        if self.broken:
            return self._send(handler, 503, b"unavailable", True)
        start = 0
        ranged = handler.headers.get("Range")
        if ranged and ranged.startswith("bytes="):
            start = int(ranged[len("bytes=") :].split("-")[0])
        part = data[start:]
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if start == 0 and name in self.cut:
            n = self.cut.pop(name)
            self.broken = True
            handler.send_response(200)
            for k, v in {**headers, "Content-Length": str(len(data))}.items():
                handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(data[:n])
            handler.wfile.flush()
            handler.close_connection = True
            return
        self._send(handler, status, part, True, headers)

    @staticmethod
    def _send(handler, status: int, data: bytes, body: bool, headers: dict | None = None):
        handler.send_response(status)
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)
