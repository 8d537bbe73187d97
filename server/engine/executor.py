"""The seam between the job queue and what runs a job: in this process on its model store, or elsewhere (a Ray
Serve generator deployment, `server/cluster/`). The API and the queue only see this interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .jobs import Job
from .store import ModelStore


class Executor(Protocol):
    slots: int  # jobs run at once: the queue starts one worker thread per slot

    def run(self, job: Job) -> None:
        """Run `job` to its end: every outcome ends in exactly one done, error or cancelled event."""

    def pick(self, waiting: Sequence[Job], previous: Job | None) -> int:
        """The index in `waiting` (oldest first, never empty) of the job a worker takes next, after `previous`."""

    def describe(self) -> dict:
        """device, dtype, device_reason and loaded (model names), for /health and /models."""

    def release(self) -> list[str]:
        """Unload every model; returns what is still loaded. Only called while no job is queued or running."""


class LocalExecutor:
    """One job at a time on this process's device: the single-process server."""

    slots = 1

    def __init__(self, store: ModelStore):
        self.store = store

    def run(self, job: Job) -> None:
        from .runner import run_job  # torch and diffusers: only when a job runs here

        run_job(job, self.store)

    def pick(self, waiting: Sequence[Job], previous: Job | None) -> int:
        return 0

    def describe(self) -> dict:
        return {
            "device": self.store.device,
            "dtype": str(self.store.dtype).removeprefix("torch."),
            "device_reason": self.store.device_reason,
            "loaded": self.store.loaded(),
        }

    def release(self) -> list[str]:
        self.store.release()
        return self.store.loaded()
