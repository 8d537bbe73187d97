"""Model downloads: POST starts fetching a configured hub model into the Hugging Face cache, GET reports bytes
done/total per file (the add-on polls it for its progress bar), DELETE stops it after the current file."""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, HTTPException, Request

from ..loaders import UnknownModel, hub

router = APIRouter()


class Download:
    def __init__(self, entry):
        self.entry = entry
        self.state = "running"
        self.error: str | None = None
        self.files: dict[str, dict] = {}
        self.started = time.monotonic()
        self.stop = threading.Event()

    def progress(self, name: str, done: int, total: int | None):
        self.files[name] = {"done": done, "total": total}

    def run(self):
        try:
            for name, size in hub.remote_files(self.entry).items():
                self.files.setdefault(name, {"done": 0, "total": size})
            hub.download(self.entry, self.progress, cancelled=self.stop.is_set)
            self.state = "done"
        except InterruptedError:
            self.state = "cancelled"
        except Exception as e:  # noqa: BLE001 - reported to the user, who can press Download again to resume
            self.state, self.error = (
                "error",
                (f"downloading {self.entry.source} failed ({type(e).__name__}: {e}); press Download again to resume"),
            )

    def report(self) -> dict:
        done = sum(f["done"] for f in self.files.values())
        total = sum(f["total"] or 0 for f in self.files.values()) or None
        return {
            "kind": self.entry.kind,
            "name": self.entry.name,
            "state": self.state,
            "error": self.error,
            "done": done,
            "total": total,
            "files": self.files,
            "seconds": round(time.monotonic() - self.started, 1),
        }


def _downloads(request: Request) -> dict:
    state = request.app.state
    if not hasattr(state, "downloads"):
        state.downloads = {}
    return state.downloads


def _entry(request: Request, kind: str, name: str):
    """The configured model of the URL; a 404 (the URL names no resource) listing the known names or kinds."""
    models = request.app.state.settings.models
    if kind not in models.entries:
        kinds = sorted(models.entries)
        message = f"no model kind {kind[:40]!r}; kinds: {', '.join(kinds)}"
        raise HTTPException(404, {"message": message, "kind": kind, "name": name, "known": kinds})
    try:
        return models.get(kind, name)
    except UnknownModel as e:
        raise HTTPException(404, {"message": str(e), "kind": e.kind, "name": e.name, "known": e.known}) from None


@router.post("/models/{kind}/{name}/download", status_code=202)
def start(kind: str, name: str, request: Request):
    entry = _entry(request, kind, name)
    found = hub.availability(entry, hub.cache_dir())
    if found["available"]:
        return {"kind": kind, "name": name, "state": "done", "error": None, "files": {}, "size": found["size"]}
    if entry.local:
        raise HTTPException(
            409,
            {
                "message": hub.missing_message(entry, found["where"], None) + " (a local file cannot be downloaded)",
                "kind": kind,
                "name": name,
            },
        )
    downloads = _downloads(request)
    current = downloads.get((kind, name))
    if current is not None and current.state == "running":
        return current.report()
    job = downloads[(kind, name)] = Download(entry)
    threading.Thread(target=job.run, name=f"download-{kind}-{name}", daemon=True).start()
    return job.report()


@router.get("/models/{kind}/{name}/download")
def progress(kind: str, name: str, request: Request):
    _entry(request, kind, name)
    job = _downloads(request).get((kind, name))
    if job is None:
        raise HTTPException(404, f"no download of {kind} {name!r} was started; POST to this URL to start one")
    return job.report()


@router.delete("/models/{kind}/{name}/download")
def cancel(kind: str, name: str, request: Request):
    job = _downloads(request).get((kind, name))
    if job is None:
        raise HTTPException(404, f"no download of {kind} {name!r} was started")
    job.stop.set()
    return job.report()
