"""The ingress's executor: each job goes to a generator replica as a streaming call routed by its (base, motion
module) pair, and what streams back (events, and the files written since the last one) lands in the ingress's own
job folder and event log, so the API serves a job on Ray exactly as one run in-process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import PurePosixPath

from ray.exceptions import ActorUnavailableError, RayActorError

from ..engine.job_records import frames_on_disk
from ..engine.jobs import Job, write_atomic
from ..log import log, log_exception
from ..protocol import FINAL_EVENTS
from .replica import pair_id, payload

CANCEL_POLL_S = 0.02  # how often a running job's cancel flag is looked at (a step of a real job takes far longer)
CANCEL_GRACE_S = 10.0  # how long a replica may take to stop a cancelled job before its call is cancelled
DISPATCH_TRIES = 3


class Undelivered(Exception):
    """The job's call failed before any replica started it."""


def _pair(job: Job) -> str:
    return pair_id(job.spec.base, job.spec.motion_module)


def _describe_replica(identity: dict | None) -> str:
    if not identity:
        return "the generator replica"
    return f"generator replica {identity['replica']} (pid {identity['pid']} on {identity['node']})"


class RayExecutor:
    """Runs jobs on the generator deployment behind `handle`, `slots` at once (one per replica)."""

    def __init__(self, handle, slots: int, describe: dict, board):
        self.handle = handle
        self.board = board  # the JobBoard actor the replicas read: cancels asked, frames stored
        self.slots = slots
        self._device = describe  # device, dtype, device_reason of the replicas, asked once at start
        self._lock = threading.Condition()
        self._streams = 0  # calls in flight: Serve counts their replicas busy until each has ended
        self.replicas: dict[str, dict] = {}  # replica id -> identity, pair, loaded, busy

    # --- the queue's questions ---------------------------------------------------------------------------
    def pick(self, waiting: Sequence[Job], previous: Job | None) -> int:
        """The oldest job that uses the pair the replica just freed has warm (looking at most `slots` jobs past
        the oldest, so no job waits forever), else the oldest."""
        if previous is not None:
            want = _pair(previous)
            for i, job in enumerate(waiting[: self.slots + 1]):
                if _pair(job) == want:
                    return i
        return 0

    def describe(self) -> dict:
        with self._lock:
            loaded = sorted({name for r in self.replicas.values() for name in r["loaded"]})
            replicas = [
                {**r["identity"], "pair": r["pair"], "busy": r["busy"], "loaded": r["loaded"]}
                for r in self.replicas.values()
            ]
        return {**self._device, "loaded": loaded, "replicas": replicas, "slots": self.slots}

    def release(self) -> list[str]:
        with self._lock:
            self._lock.wait_for(lambda: self._streams == 0, timeout=30)
            targets = {rid: r["pair"] for rid, r in self.replicas.items() if r["loaded"]}
        for rid, pair in targets.items():
            try:  # routed by the pair the replica holds: with nothing running, Serve sends it there
                answer = self.handle.options(multiplexed_model_id=pair).release.remote().result(timeout_s=120)
            except Exception as e:  # noqa: BLE001 - a replica gone since: it holds nothing any more
                log.warning("release on %s failed: %s", rid, e)
                with self._lock:
                    self.replicas.pop(rid, None)
                continue
            self._seen(answer["identity"], answer["loaded"], pair, busy=False)
        return self.describe()["loaded"]

    def _seen(self, identity: dict, loaded: list[str], pair: str | None, busy: bool):
        with self._lock:
            entry = self.replicas.setdefault(identity["replica"], {"identity": identity, "pair": None, "loaded": []})
            entry.update(identity=identity, loaded=list(loaded), busy=busy)
            if pair is not None:
                entry["pair"] = pair

    # --- one job -----------------------------------------------------------------------------------------
    def run(self, job: Job) -> None:
        for attempt in range(DISPATCH_TRIES):
            try:
                self._run_once(job)
                return
            except Undelivered as e:  # a replica that died before Serve knew: nothing ran, send it again
                if attempt == DISPATCH_TRIES - 1 or job.cancel_requested.is_set():
                    self._failed(job, None, e.__cause__)
                    return
                log.warning("job %s: its replica was gone before it started (%s); sending it again", job.id, e)
                time.sleep(1.0)

    def _run_once(self, job: Job) -> None:
        pair = _pair(job)
        request = {**payload(job), "board": self.board}
        with self._lock:
            self._streams += 1
        try:
            self._stream(job, pair, request)
        finally:
            with self._lock:
                self._streams -= 1
                self._lock.notify_all()

    def _stream(self, job: Job, pair: str, request: dict) -> None:
        response = self.handle.options(stream=True, multiplexed_model_id=pair).run.remote(request)
        ended = threading.Event()
        threading.Thread(target=self._cancel_when_asked, args=(job, response, ended), daemon=True).start()
        identity = None
        try:
            # Read to the stream's end (the replica returns right after the final event): until then Serve counts
            # the replica busy, and the next job of its pair would be routed elsewhere.
            for message in response:
                if message["event"] == "replica":
                    identity = message["data"]
                    job.manifest["replica"] = identity
                    log.info("job %s runs on %s", job.id, _describe_replica(identity))
                self._apply(job, message)
                if message["event"] == "frame":  # stored: the replica may make the next one
                    self.board.store.remote(job.id, message["data"]["index"])
                if identity is not None:
                    self._seen(identity, message["loaded"], pair, busy=message["event"] not in FINAL_EVENTS)
        except Exception as e:  # noqa: BLE001 - every way a remote call fails ends this job, not the worker
            if job.finished:
                return
            if identity is None and isinstance(e, (RayActorError, ActorUnavailableError)):
                raise Undelivered(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
            if not job.cancel_requested.is_set():
                self._failed(job, identity, e)
                return
        finally:
            ended.set()
            self.board.forget.remote(job.id)
        if job.finished:
            return
        if job.cancel_requested.is_set():
            self._end(job, "cancelled", "cancelled by the client")
        else:
            self._end(job, "error", f"{_describe_replica(identity)} ended its stream before the job ended")

    def _cancel_when_asked(self, job: Job, response, ended: threading.Event):
        while not ended.wait(CANCEL_POLL_S):
            if job.cancel_requested.is_set():
                break
        else:
            return
        # The replica reads the board after every step and frame, ends the job with its own cancelled event and
        # manifest, and its stream ends as usual. One that does not answer in time has its call cancelled.
        self.board.cancel.remote(job.id)
        if not ended.wait(CANCEL_GRACE_S):
            log.warning(
                "job %s: its replica did not stop within %.0f s of the cancel; cancelling the call",
                job.id,
                CANCEL_GRACE_S,
            )
            response.cancel()
        self.board.forget.remote(job.id)

    def _apply(self, job: Job, message: dict):
        for name, data in message["files"].items():
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts:
                raise ValueError(f"a replica sent a file outside the job folder: {name!r}")
            target = job.folder.joinpath(*path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            if name == "manifest.json":
                job.manifest = json.loads(data)
            write_atomic(target, data)
        if message["event"] != "replica":
            job.emit(message["event"], **message["data"])

    def _failed(self, job: Job, identity: dict | None, exc: BaseException):
        self._announce_arrived(job)
        cause = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        if isinstance(exc, (RayActorError, ActorUnavailableError)):
            message = (
                f"{_describe_replica(identity)} died while running this job ({cause}); the "
                f"{len(job.frames_ready)} frames and the previews streamed before are kept; Ray restarts the "
                f"replica: submit the job again to finish it"
            )
            if identity is not None:
                with self._lock:
                    self.replicas.pop(identity["replica"], None)
        else:
            message = f"running the job on {_describe_replica(identity)} failed ({cause})"
        log_exception(f"job {job.id}", exc)
        self._end(job, "error", message)

    def _announce_arrived(self, job: Job):
        """A frame that arrived whole with an earlier message while its own event never came (the replica died
        between the two) is announced now: what is on disk is served, as for a job read back from its folder."""
        for index in frames_on_disk(job.frames_dir):
            if index not in job.frames_ready:
                job.emit("frame", index=index, url=f"/jobs/{job.id}/frames/{index}")

    def _end(self, job: Job, status: str, message: str):
        """End a job the replica could not end itself; the frames already streamed stay and are served."""
        self._announce_arrived(job)
        frames = sorted(p.name for p in job.frames_dir.glob("frame_*.png"))
        job.manifest.update(status=status, message=message, frames=frames)
        job.manifest.setdefault("timings", {})["finished_at"] = time.time()
        try:
            job.write_manifest()
        except OSError as e:
            log_exception(f"writing the manifest of job {job.id}", e)
        data = {"message": message, "frames": len(job.frames_ready)}
        job.emit(status, **data)
