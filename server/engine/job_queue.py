"""The first-in-first-out queue of jobs, drained by the executor's worker threads.

The job folder is the record: `manifest.json` is written with status "queued" at submission and rewritten as the
job runs and ends; the uploaded guides wait in `guides/` as the PNG files that were sent. A server that restarts on
the same data folder marks what was queued or running as "interrupted" and serves every job it finds there.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections import OrderedDict, deque
from pathlib import Path
from typing import TYPE_CHECKING

from ..log import log, log_exception
from ..protocol import JobSpec
from .job_records import JOB_ID, mark_interrupted, read_job
from .jobs import Job

if TYPE_CHECKING:
    from .executor import Executor

HISTORY = 64  # finished jobs kept in memory; older ones are read back from their folders when asked for


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
        self.recovered = mark_interrupted(self.data_dir)
        self._threads = [
            threading.Thread(target=self._work, name=f"marionette-worker-{i}", daemon=True)
            for i in range(executor.slots)
        ]
        for thread in self._threads:
            thread.start()

    # --- the record on disk ---------------------------------------------------------------------------------
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
