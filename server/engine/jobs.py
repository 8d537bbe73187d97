"""Jobs: their folders on disk, their event logs, and the first-in-first-out queue that one worker drains.

The job folder is the record: `manifest.json` is written with status "queued" at submission and rewritten as the
job runs and ends; the uploaded guides wait in `guides/` as the PNG files that were sent. A server that restarts on
the same data folder marks what was queued or running as "interrupted" and serves every job it finds there.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict, deque
from pathlib import Path
from typing import TYPE_CHECKING

from ..log import log, log_exception
from ..protocol import FINAL_EVENTS, FORM_POSE, JobSpec, frame_filename, parse_spec

if TYPE_CHECKING:
    from .executor import Executor

JOB_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{8}")
HISTORY = 64  # finished jobs kept in memory; older ones are read back from their folders when asked for


class Cancelled(Exception):
    """Raised inside a running job when its cancel was asked for."""


class DiskFull(OSError):
    """The data folder's disk is full (or over its quota)."""


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_atomic(path: Path, data: bytes):
    """Write through a temporary file beside `path`, removed again if the write fails."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
        self.manifest: dict = {}
        self.created = time.time()
        self.guide_counts: dict[str, int] = {}  # form field -> files waiting in guides/
        self._guides: dict | None = None
        self._events: list[tuple[int, str, dict]] = []
        self._lock = threading.Lock()
        self._watchers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.cancel_requested = threading.Event()
        # A job read back from its folder has no event log: its stream is its final state, numbered after the
        # id the client last saw so that a reconnecting client takes it.
        self.replay: tuple[str, dict] | None = None

    @property
    def frames_dir(self) -> Path:
        return self.folder / "frames"

    def frame_path(self, index: int) -> Path:
        return self.frames_dir / frame_filename(index)

    @property
    def guides(self) -> dict:
        """The decoded guides, read from guides/ when the job first asks (they wait on disk, not in memory)."""
        if self._guides is None:
            self._guides = load_guides(self.folder / "guides", self.spec, self.guide_counts)
        return self._guides

    def emit(self, kind: str, **data):
        with self._lock:
            if self.finished:
                return  # one final event per job: a shutdown's cancel may race the worker's own
            if kind == "step":
                self.step = data["i"]
            elif kind == "frame":
                self.frames_ready.append(data["index"])
            elif kind in FINAL_EVENTS:
                self.state = kind
                self.error = data.get("message") if kind in ("error", "interrupted") else self.error
                self._guides = None
            self._events.append((len(self._events) + 1, kind, data))
            watchers = list(self._watchers)
        for loop, event in watchers:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed
                pass

    def watch(self) -> asyncio.Event:
        """An asyncio event of the running loop, set whenever this job emits. Pair with `unwatch`."""
        event = asyncio.Event()
        with self._lock:
            self._watchers.add((asyncio.get_running_loop(), event))
        return event

    def unwatch(self, event: asyncio.Event):
        with self._lock:
            self._watchers = {w for w in self._watchers if w[1] is not event}

    def events_after(self, seq: int) -> list[tuple[int, str, dict]]:
        """Events with an id above `seq`, now (never waits)."""
        with self._lock:
            if self.replay is not None:
                kind, data = self.replay
                return [(seq + 1, kind, data)]
            return self._events[seq:]

    @property
    def finished(self) -> bool:
        return self.state in FINAL_EVENTS

    def check_cancel(self):
        if self.cancel_requested.is_set():
            raise Cancelled()

    def write_manifest(self):
        write_atomic(
            self.folder / "manifest.json", json.dumps(self.manifest, indent=2, sort_keys=True, default=str).encode()
        )


def load_guides(folder: Path, spec: JobSpec, counts: dict[str, int]) -> dict:
    """Decode the guides a job was sent (guides/<field>_NNNN.png, pose.json) into arrays."""
    import numpy as np
    from PIL import Image

    guides = {}
    for name, count in counts.items():
        if name == FORM_POSE:
            from . import (
                pose,  # controlnet-aux is slow to import: only when a job has a pose guide
            )

            people = pose.parse_frames(
                json.loads((folder / "pose.json").read_bytes()), spec.frames, spec.width, spec.height
            )
            guides["openpose"] = [pose.draw(p, spec.width, spec.height) for p in people]
            for i, image in enumerate(guides["openpose"]):  # the pose guide as the ControlNet saw it
                Image.fromarray(image).save(folder / f"openpose_{i + 1:04d}.png")
        else:
            images = []
            for i in range(count):
                with Image.open(folder / f"{name}_{i + 1:04d}.png") as image:
                    images.append(np.asarray(image.convert("RGB")))
            guides[name] = images
    return guides


def read_job(folder: Path) -> Job | None:
    """A job read back from its folder (after a restart, or out of the in-memory history); None if unreadable."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        spec = parse_spec(manifest["spec"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    job = Job(spec, folder, folder.name)
    job.manifest = manifest
    job.state = manifest.get("status", "interrupted")
    job.created = manifest.get("created", job.created)
    job.frames_ready = sorted(
        int(p.stem.split("_")[1]) - 1 for p in job.frames_dir.glob("frame_*.png") if p.stem.split("_")[1].isdigit()
    )
    previews = sorted(
        int(p.stem.split("_")[1]) for p in (folder / "previews").glob("step_*.png") if p.stem.split("_")[1].isdigit()
    )
    job.step = previews[-1] if previews else 0
    job.error = manifest.get("message") if job.state in ("error", "interrupted") else None
    job.replay = (
        job.state,
        {
            "message": manifest.get("message", ""),
            "frames": len(job.frames_ready),
            "manifest": f"/jobs/{job.id}/manifest",
        },
    )
    return job


class JobQueue:
    """First in, first out, drained by the executor's worker threads: one per job it runs at once (in-process one,
    on a Ray cluster one per generator replica)."""

    def __init__(self, data_dir: Path, executor: Executor, history: int = HISTORY):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.executor = executor
        self._history = history
        self._jobs: dict[str, Job] = {}  # queued and running jobs
        self._done: OrderedDict[str, Job] = OrderedDict()  # the most recent finished ones
        self._waiting: deque[Job] = deque()
        self._running: list[Job] = []
        self._cond = threading.Condition()
        self._stopping = False
        self.recovered = self._mark_interrupted()
        self._threads = [
            threading.Thread(target=self._work, name=f"marionette-worker-{i}", daemon=True)
            for i in range(executor.slots)
        ]
        for thread in self._threads:
            thread.start()

    # --- the record on disk ---------------------------------------------------------------------------------
    def _mark_interrupted(self) -> list[str]:
        """Jobs whose manifest says queued or running were cut off by a stop: mark them interrupted."""
        found = []
        for folder in sorted(self.data_dir.iterdir()):
            if not JOB_ID.fullmatch(folder.name):
                continue
            for tmp in folder.glob("*.tmp"):
                tmp.unlink(missing_ok=True)
            path = folder / "manifest.json"
            try:
                manifest = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if manifest.get("status") not in ("queued", "running"):
                continue
            frames = sorted(p.name for p in (folder / "frames").glob("frame_*.png"))
            was = manifest["status"]
            manifest.update(
                status="interrupted",
                frames=frames,
                message=f"the server stopped while this job was {was}; {len(frames)} frames were "
                f"written; submit it again to finish it",
            )
            try:
                write_atomic(path, json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())
            except OSError as e:
                log_exception(f"marking job {folder.name} interrupted", e)
                continue
            found.append(folder.name)
        if found:
            log.warning("marked %d jobs interrupted after a stop: %s", len(found), ", ".join(found))
        return found

    def new_job(self, spec: JobSpec) -> Job:
        job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        folder = self.data_dir / job_id
        try:
            (folder / "frames").mkdir(parents=True)
            (folder / "guides").mkdir()
            (folder / "previews").mkdir()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return Job(spec, folder, job_id)

    def discard(self, job: Job):
        """Remove a job that was never queued (its submission failed half way) with its folder."""
        shutil.rmtree(job.folder, ignore_errors=True)

    # --- the queue ------------------------------------------------------------------------------------------
    def submit(self, job: Job):
        with self._cond:
            if self._stopping:
                raise RuntimeError("the server is shutting down")
            self._jobs[job.id] = job
            self._waiting.append(job)
            job.emit("queued", position=self._ahead(len(self._waiting) - 1))
            self._cond.notify_all()
        log.info(
            "job %s queued (%d frames, %d steps, %dx%d)",
            job.id,
            job.spec.frames,
            job.spec.steps,
            job.spec.width,
            job.spec.height,
        )

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            job = self._jobs.get(job_id) or self._done.get(job_id)
        if job is not None or not JOB_ID.fullmatch(job_id):
            return job
        return read_job(self.data_dir / job_id)

    def position(self, job: Job) -> int | None:
        """How many jobs run before this one (0: next or running); None once it has left the queue."""
        with self._cond:
            if job in self._running:
                return 0
            if job in self._waiting:
                return self._ahead(self._waiting.index(job))
            return None

    def _ahead(self, index: int) -> int:
        """Jobs that must end before the waiting job at `index` starts (0: it starts as soon as a worker takes it)."""
        return max(0, index + 1 - (self.executor.slots - len(self._running)))

    def cancel(self, job: Job):
        with self._cond:
            if job in self._waiting:
                self._waiting.remove(job)
                self._finish_unrun(job, "cancelled", "cancelled before it started")
                return
        job.cancel_requested.set()

    def idle(self) -> bool:
        with self._cond:
            # A job past its final event is done for clients, while its worker may still be tidying up.
            return not self._waiting and all(job.finished for job in self._running)

    def begin_stop(self):
        """Stop taking jobs, cancel the waiting ones and the running one; every open stream gets its final
        event now (the worker's own ending of the running job follows and is not streamed again)."""
        with self._cond:
            self._stopping = True
            waiting, self._waiting = list(self._waiting), deque()
            running = list(self._running)
            self._cond.notify_all()
        for job in waiting:
            self._finish_unrun(job, "cancelled", "the server is shutting down")
        for job in running:
            job.cancel_requested.set()
            job.emit("cancelled", message="the server is shutting down", frames=len(job.frames_ready))

    def stop(self):
        self.begin_stop()
        for thread in self._threads:  # each ends once its job has (one per slot)
            thread.join(timeout=30)

    def _finish_unrun(self, job: Job, status: str, message: str):
        job.manifest.update(status=status, message=message, frames=[])
        try:
            job.write_manifest()
        except OSError as e:
            log_exception(f"writing the manifest of job {job.id}", e)
        job.emit(status, message=message)
        self._retire(job)

    def _retire(self, job: Job):
        with self._cond:
            self._jobs.pop(job.id, None)
            self._done[job.id] = job
            while len(self._done) > self._history:
                self._done.popitem(last=False)

    def _work(self):
        previous = None  # the job this worker ran last: the executor may prefer one that reuses its models
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._waiting[self.executor.pick(list(self._waiting), previous)]
                self._waiting.remove(job)
                self._running.append(job)
            started = time.perf_counter()
            log.info("job %s started after %.1f s queued", job.id, time.time() - job.created)
            try:
                job.state = "running"
                self.executor.run(job)
            except Exception as e:  # noqa: BLE001 - the runner ends its own failures; this is a bug in it
                log_exception(f"job {job.id}", e)
                job.emit("error", message=f"internal error ({type(e).__name__}); see server.log")
            finally:
                timings = job.manifest.get("timings", {})
                log.info(
                    "job %s ended: %s in %.2f s (load %s s, generate %s s), %d frames%s",
                    job.id,
                    job.state,
                    time.perf_counter() - started,
                    timings.get("load_s"),
                    timings.get("generate_s"),
                    len(job.frames_ready),
                    f": {job.error}" if job.error else "",
                )
                with self._cond:
                    self._running.remove(job)
                    self._cond.notify_all()
                self._retire(job)
                previous = job
