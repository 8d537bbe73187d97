"""What is computed from a file, kept per version of the file: a version is (path, size, mtime), so an edited or
replaced file is a new version and is read again. `FileHashes` (hashes.py) keys its hashes the same way."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


def file_version(path) -> tuple:
    """(path, size, mtime_ns) of the file now."""
    st = os.stat(path)
    return str(path), st.st_size, st.st_mtime_ns


class PerVersion:
    """Values read from files, one per path: the value of the file's current version, read again when it changed.

    Reading happens outside the lock (two threads may read one new version twice; either result is kept)."""

    def __init__(self):
        self._values: dict[str, tuple[tuple, object]] = {}
        self._lock = threading.Lock()

    def get(self, path, read: Callable[[str], object]):
        """read(path) for this version of the file; a file that cannot be stat'ed is left to `read` to report."""
        try:
            key = file_version(path)
        except OSError:
            return read(str(path))
        with self._lock:
            kept = self._values.get(key[0])
        if kept is not None and kept[0] == key:
            return kept[1]
        value = read(key[0])
        with self._lock:
            self._values[key[0]] = (key, value)
        return value
