"""sha256 of weight files for the manifests, computed once per file version (path, size, mtime) on one background
thread: neither /plan nor a job waits for gigabytes to be hashed before it answers or takes its first step. A server
keeps the hashes in its data folder, so that a restart hashes only the files that changed."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import threading
from concurrent.futures import Future
from pathlib import Path

from .file_versions import file_version

_DIGEST = re.compile(r"[0-9a-f]{64}")


class FileHashes:
    """The hashes known or being computed, keyed by file version; a changed size or mtime is a new version.

    The worker is a daemon thread: a server that exits while a large file is being hashed does not wait for it."""

    def __init__(self):
        self._futures: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._file: Path | None = None

    def keep_in(self, path) -> None:
        """Read the hashes kept in `path` (JSON rows [path, size, mtime_ns, sha256]) and keep every new one there.
        A row whose file has another size or mtime now is a stale version: never used, and dropped on the next save.
        An unreadable file is ignored (the hashes are computed again)."""
        path = Path(path)
        try:
            rows = json.loads(path.read_text())
            known = {(str(p), int(n), int(m)): d for p, n, m, d in rows if _DIGEST.fullmatch(str(d))}
        except (OSError, ValueError, TypeError):
            known = {}
        with self._lock:
            self._file = path
            for key, digest in known.items():
                if key not in self._futures:
                    self._futures[key] = Future()
                    self._futures[key].set_result(digest)

    version = staticmethod(file_version)

    def start(self, path) -> Future:
        """The hash of this version of the file, being computed (or already known)."""
        key = self.version(path)
        with self._lock:
            future = self._futures.get(key)
            if future is None:
                future = self._futures[key] = Future()
                self._queue.put((key, future))
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
            key, future = self._queue.get()
            future.set_running_or_notify_cancel()
            try:
                digest = _sha256(key[0])
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits for this hash
                future.set_exception(e)
                continue
            self._save([*key, digest])  # kept before anyone sees it: a restart right after knows it
            future.set_result(digest)

    def _save(self, new_row: list):
        with self._lock:
            if self._file is None:
                return
            rows = [[*k, f.result()] for k, f in self._futures.items() if f.done() and f.exception() is None]
            rows.append(new_row)
            file = self._file
        current = []
        for row in rows:
            try:
                if self.version(row[0]) == tuple(row[:3]):
                    current.append(row)
            except OSError:
                pass  # the file is gone
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_name(file.name + ".tmp")
            tmp.write_text(json.dumps(current))
            os.replace(tmp, file)
        except OSError:
            pass  # a read-only data folder: the hashes are only computed again after a restart


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


HASHES = FileHashes()
