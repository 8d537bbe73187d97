"""A job on a generator replica: the engine's `run_job` on a scratch copy of the job folder, every event streamed
back with the files it wrote since the last one (frames, previews, the manifest), so the ingress's job folder fills
as the replica works. A frame is handed over before the next is made: a killed replica loses at most the frame it
was making. Nothing here imports Ray: `deployments.py` drives it."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from ..engine.jobs import Job
from ..engine.store import ModelStore
from ..log import log
from ..protocol import FINAL_EVENTS, parse_spec


def pair_id(base: str, motion_module: str) -> str:
    """The multiplexed model id of a job: the models a replica keeps warm between jobs."""
    return f"{base}+{motion_module}"


def payload(job: Job) -> dict:
    """What a replica needs to run `job`: its spec, its queued manifest and the guides as they were sent."""
    guides = job.folder / "guides"
    return {
        "id": job.id,
        "created": job.created,
        "manifest": job.manifest,
        "guide_counts": job.guide_counts,
        "guides": {p.name: p.read_bytes() for p in sorted(guides.iterdir()) if p.is_file()},
    }


HANDOVER_LIMIT_S = 120.0  # an ingress that stores no frame for this long is not waited for any more


class RelayJob(Job):
    """A job whose events also go to a thread-safe queue, read by the replica's response stream, and whose cancel
    check (after every step and frame) also asks the ingress (`asked`). After a frame's event, the job waits until
    `stored(index)` says the ingress has that frame (it waits a second at most per call) before it makes the next:
    frames made and not yet streamed would die with the replica."""

    def __init__(
        self,
        *args,
        asked: Callable[[], bool] | None = None,
        stored: Callable[[int], bool] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.asked, self.stored = asked, stored

    def check_cancel(self):
        if not self.cancel_requested.is_set() and self.asked is not None and self.asked():
            self.cancel_requested.set()
        super().check_cancel()

    def emit(self, kind: str, **data):
        before = len(self._events)
        super().emit(kind, **data)
        if len(self._events) > before:  # not one dropped after the final event
            self.outbox.put((kind, data))
            if kind == "frame" and self.stored is not None:
                self._hand_over(data["index"])

    def _hand_over(self, index: int):
        deadline = time.monotonic() + HANDOVER_LIMIT_S
        while not self.cancel_requested.is_set():  # a cancelled stream is read by nobody
            if self.stored(index):
                return
            if time.monotonic() > deadline:  # then it reads this stream no more: the rest is not waited for
                log.warning("job %s: the ingress did not store frame %d in time; going on", self.id, index)
                self.stored = None
                return


class Changes:
    """The files of a folder written since the last look, by (size, mtime)."""

    def __init__(self, root: Path):
        self.root = root
        self.seen = self._stat()

    def _stat(self) -> dict[str, tuple[int, int]]:
        found = {}
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.endswith(".tmp"):
                st = path.stat()
                found[path.relative_to(self.root).as_posix()] = (st.st_size, st.st_mtime_ns)
        return found

    def take(self) -> dict[str, bytes]:
        now = self._stat()
        changed = {}
        for name, stamp in now.items():
            if self.seen.get(name) != stamp:
                try:
                    changed[name] = (self.root / name).read_bytes()
                except OSError:  # replaced between the look and the read: the next look takes it
                    continue
                self.seen[name] = stamp
        return changed


class Replica:
    """The job-running half of a generator replica: one job at a time on its model store."""

    def __init__(self, store: ModelStore, scratch: Path, identity: dict):
        self.store = store
        self.scratch = Path(scratch)
        self.identity = identity
        self.idle = threading.Event()  # clear while a job's thread runs: after a cancel it may still end its step
        self.idle.set()

    def _job(self, request: dict, asked, stored) -> RelayJob:
        folder = self.scratch / request["id"]
        shutil.rmtree(folder, ignore_errors=True)
        for sub in ("frames", "guides", "previews"):
            (folder / sub).mkdir(parents=True)
        for name, data in request["guides"].items():
            (folder / "guides" / os.path.basename(name)).write_bytes(data)
        job = RelayJob(parse_spec(request["manifest"]["spec"]), folder, request["id"], asked=asked, stored=stored)
        job.created = request["created"]
        job.guide_counts = dict(request["guide_counts"])
        job.manifest = {**request["manifest"], "replica": self.identity}
        return job

    async def run(
        self,
        request: dict,
        asked: Callable[[], bool] | None = None,
        stored: Callable[[int], bool] | None = None,
    ) -> AsyncIterator[dict]:
        """Run one job, yielding {event, data, files} as it goes. The job is cancelled at its next step or frame
        once `asked()` says so, or when this stream is cancelled; with `stored`, each frame waits for the ingress
        to have stored the one before (see RelayJob)."""
        from ..engine.runner import run_job

        while not self.idle.is_set():  # checked and cleared on the event loop: no two jobs pass
            await asyncio.to_thread(self.idle.wait, 1.0)
        self.idle.clear()
        try:
            job = self._job(request, asked, stored)
        except BaseException:
            self.idle.set()
            raise
        changes = Changes(job.folder)
        done, abandoned = threading.Event(), threading.Event()

        def work():
            try:
                run_job(job, self.store)
            finally:
                done.set()
                job.outbox.put(None)
                if abandoned.is_set():
                    shutil.rmtree(job.folder, ignore_errors=True)
                self.idle.set()

        threading.Thread(target=work, name=f"job-{job.id}", daemon=True).start()
        yield {"event": "replica", "data": self.identity, "files": {}}
        try:
            while True:
                item = await asyncio.to_thread(job.outbox.get)
                if item is None:
                    return
                kind, data = item
                yield {"event": kind, "data": data, "files": changes.take()}
                if kind in FINAL_EVENTS:
                    return
        finally:
            job.cancel_requested.set()  # no-op after the end; after the stream's cancel, stops the job within a step
            abandoned.set()
            if done.is_set():
                shutil.rmtree(job.folder, ignore_errors=True)
