"""A job: its spec, its folder on disk and the ordered events that clients stream; the folder's atomic writes and
the decoding of the guides it was sent. The queue that runs jobs is `job_queue.py`; reading a job back from its
folder after a restart is `job_records.py`.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import threading
import time
from pathlib import Path

from ..protocol import FINAL_EVENTS, FORM_POSE, JobSpec, frame_filename


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


def write_png(path: Path, rgb) -> None:
    """A PNG in a job folder, whole or not at all: never seen half written (by a replica streaming the folder, or
    after a kill)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())


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
                write_png(folder / f"openpose_{i + 1:04d}.png", image)
        else:
            images = []
            for i in range(count):
                with Image.open(folder / f"{name}_{i + 1:04d}.png") as image:
                    images.append(np.asarray(image.convert("RGB")))
            guides[name] = images
    return guides
