"""One generation job driven from worker threads. No bpy here: the main thread drains `messages`.

Two network phases with the guide capture (main thread, bpy) between them: `preflight` asks the server for the
plan of the spec, so a bad model name, a clip too long for the motion module or an unreachable server is reported
before anything is rendered; `stream` submits the job with its guides and follows it. Frames are written to the job
folder by the worker the moment they arrive, so nothing received is lost whatever happens later in Blender.
Without an event loop (`blender -b`, the bpy module) the phases are called directly instead of through `start`.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import NamedTuple

from .client import Client, ServerError
from .model_errors import artist_message
from .protocol import FINAL_EVENTS, JobSpec, frame_filename


class Message(NamedTuple):
    """One worker -> main thread message: a server event kind ("step", "frame", "done", ...) or one of the
    client's own ("planned", "submitted", "error"), with its data."""

    kind: str
    data: dict


class Generation:
    def __init__(self, client: Client, spec: JobSpec, out_dir: Path):
        self.client, self.spec = client, spec
        self.guides: dict[str, list[bytes]] = {}
        self.out_dir = Path(out_dir)
        self.messages: queue.Queue = queue.Queue()
        self.job_id: str | None = None
        self.cancel_requested = threading.Event()
        self.finished = threading.Event()
        self._thread: threading.Thread | None = None
        # Main thread only: indices of the frames whose files arrived, and how many from the first are imported.
        self.received: set[int] = set()
        self.shown = 0

    def start(self, phase, *args):
        """Run a phase (`self.preflight` or `self.stream`) in a worker thread."""
        self._thread = threading.Thread(target=phase, args=args, name="marionette-generation", daemon=True)
        self._thread.start()

    def preflight(self):
        """Check the spec against the server: ("planned", plan) or a final ("error", ...)."""
        # The camera path exists only after capture; the plan checks models and limits without it.
        spec = {**self.spec.to_dict(), "camera_motion": "manual", "camera": None, "cameractrl": None}
        try:
            self.messages.put(Message("planned", self.client.plan(spec)))
        except ServerError as e:
            self.messages.put(Message("error", {"message": artist_message(e, spec), "status": e.status}))
            self.finished.set()

    def stream(self, spec: JobSpec, guides: dict[str, list[bytes]]):
        """Submit `spec` (the checked spec with its camera path), follow the events, save frames; always ends with
        one final message."""
        self.spec, self.guides = spec, guides
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.job_id = self.client.submit(self.spec.to_dict(), self.guides)
            self.messages.put(Message("submitted", {"id": self.job_id}))
            if self.cancel_requested.is_set():
                self._send_cancel()
            for _, kind, data in self.client.events(self.job_id):
                if kind == "frame":
                    path = self.out_dir / frame_filename(data["index"])
                    path.write_bytes(self.client.fetch(data["url"]))
                    data = dict(data, path=str(path))
                elif kind == "step" and data.get("preview"):
                    (self.out_dir / "preview.png").write_bytes(self.client.fetch(data["preview"]))
                self.messages.put(Message(kind, data))
                if kind in FINAL_EVENTS:
                    return
            self.messages.put(
                Message(
                    "error",
                    {
                        "message": "the server closed the event stream before the job ended; "
                        "the frames received so far are kept"
                    },
                )
            )
        except ServerError as e:
            self.messages.put(Message("error", {"message": artist_message(e, self.spec.to_dict()), "status": e.status}))
        except OSError as e:
            self.messages.put(Message("error", {"message": f"cannot write frames to {self.out_dir}: {e}"}))
        finally:
            self.finished.set()

    def cancel(self):
        """Ask the server to stop the job; returns at once (the request runs in its own thread)."""
        self.cancel_requested.set()
        if self.job_id:
            threading.Thread(target=self._send_cancel, daemon=True).start()

    def _send_cancel(self):
        try:
            self.client.cancel(self.job_id)
        except ServerError:
            pass  # the job may have just ended; the event stream says how

    def drain(self) -> list[Message]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out
