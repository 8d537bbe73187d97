"""Jobs: their folders on disk, their event logs, and the first-in-first-out queue that one worker drains."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

from ..protocol import FINAL_EVENTS, JobSpec, frame_filename


class Cancelled(Exception):
    """Raised inside a running job when its cancel was asked for."""


class Job:
    """One generation: its spec, its folder and the ordered events that clients stream."""

    def __init__(self, spec: JobSpec, folder: Path, job_id: str):
        self.id = job_id
        self.spec = spec
        self.folder = folder
        self.state = "queued"
        self.step = 0
        self.steps = spec.steps
        self.frames_ready: list[int] = []
        self.error: str | None = None
        self.guides: dict = {}          # decoded guides, filled at submission, dropped when the job ends
        self.manifest: dict = {}
        self.created = time.time()
        self._events: list[tuple[int, str, dict]] = []
        self._cond = threading.Condition()
        self.cancel_requested = threading.Event()

    @property
    def frames_dir(self) -> Path:
        return self.folder / "frames"

    def frame_path(self, index: int) -> Path:
        return self.frames_dir / frame_filename(index)

    def emit(self, kind: str, **data):
        with self._cond:
            if kind == "step":
                self.step = data["i"]
            elif kind == "frame":
                self.frames_ready.append(data["index"])
            elif kind in FINAL_EVENTS:
                self.state = kind
                self.error = data.get("message") if kind == "error" else self.error
                self.guides = {}
            self._events.append((len(self._events) + 1, kind, data))
            self._cond.notify_all()

    def events_after(self, seq: int, timeout: float) -> list[tuple[int, str, dict]]:
        """Events with an id above `seq`, waiting up to `timeout` seconds for one to come."""
        with self._cond:
            if len(self._events) <= seq and self.state not in FINAL_EVENTS:
                self._cond.wait(timeout)
            return self._events[seq:]

    @property
    def finished(self) -> bool:
        return self.state in FINAL_EVENTS

    def check_cancel(self):
        if self.cancel_requested.is_set():
            raise Cancelled()

    def write_manifest(self):
        tmp = self.folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(self.manifest, indent=2, sort_keys=True, default=str))
        tmp.replace(self.folder / "manifest.json")


class JobQueue:
    """First in, first out, one worker thread: one job at a time on the device."""

    def __init__(self, data_dir: Path, run: Callable[[Job], None]):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._run = run
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self.current: Job | None = None
        self._thread = threading.Thread(target=self._work, name="marionette-worker", daemon=True)
        self._thread.start()

    def new_job(self, spec: JobSpec) -> Job:
        job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        folder = self.data_dir / job_id
        (folder / "frames").mkdir(parents=True)
        (folder / "guides").mkdir()
        (folder / "previews").mkdir()
        return Job(spec, folder, job_id)

    def submit(self, job: Job):
        with self._cond:
            self._jobs[job.id] = job
            self._waiting.append(job)
            job.emit("queued", position=len(self._waiting) - 1 + (self.current is not None))
            self._cond.notify_all()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def position(self, job: Job) -> int | None:
        """How many jobs run before this one (0: next or running); None once it has left the queue."""
        with self._cond:
            if job is self.current:
                return 0
            if job in self._waiting:
                return self._waiting.index(job) + (self.current is not None)
            return None

    def cancel(self, job: Job):
        with self._cond:
            if job in self._waiting:
                self._waiting.remove(job)
                job.emit("cancelled", message="cancelled before it started")
                return
        job.cancel_requested.set()

    def idle(self) -> bool:
        with self._cond:
            return self.current is None and not self._waiting

    def stop(self):
        with self._cond:
            self._stopping = True
            for job in list(self._waiting):
                job.emit("cancelled", message="the server is shutting down")
            self._waiting.clear()
            if self.current is not None:
                self.current.cancel_requested.set()
            self._cond.notify_all()
        self._thread.join(timeout=30)

    def _work(self):
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self.current = self._waiting.popleft()
            try:
                job.state = "running"
                self._run(job)
            finally:
                with self._cond:
                    self.current = None
                    self._cond.notify_all()
