"""sha256 of weight files for the manifests, computed once per file version (path, size, mtime) on one background
thread: neither /plan nor a job waits for gigabytes to be hashed before it answers or takes its first step."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from concurrent.futures import Future


class FileHashes:
    """The hashes known or being computed, keyed by file version; a changed size or mtime is a new version.

    The worker is a daemon thread: a server that exits while a large file is being hashed does not wait for it."""

    def __init__(self):
        self._futures: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    @staticmethod
    def version(path) -> tuple:
        st = os.stat(path)
        return str(path), st.st_size, st.st_mtime_ns

    def start(self, path) -> Future:
        """The hash of this version of the file, being computed (or already known)."""
        key = self.version(path)
        with self._lock:
            future = self._futures.get(key)
            if future is None:
                future = self._futures[key] = Future()
                self._queue.put((key[0], future))
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="marionette-hash", daemon=True)
                    self._worker.start()
            return future

    def get(self, path, wait: bool = True) -> str | None:
        """The hex digest; None when `wait` is false and it is not known yet (it is then being computed)."""
        future = self.start(path)
        if not wait and not future.done():
            return None
        return future.result()

    def _work(self):
        while True:
            path, future = self._queue.get()
            future.set_running_or_notify_cancel()
            try:
                future.set_result(_sha256(path))
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits for this hash
                future.set_exception(e)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


HASHES = FileHashes()
