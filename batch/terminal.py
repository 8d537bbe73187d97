"""What the batch prints: one progress line per action, render-engine noise kept out, Ctrl-C that cancels."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from contextlib import contextmanager, redirect_stdout
from pathlib import Path


class Progress:
    """Writes to the terminal the batch started with, even while fd 1 goes to the log. On a terminal the line of
    the running action is rewritten in place; in a log it is printed at most once a second."""

    def __init__(self):
        sys.stdout.flush()
        self.out = os.fdopen(os.dup(1), "w", buffering=1)
        self.tty = self.out.isatty()
        self._last = 0.0
        self._open = False

    def update(self, text: str):
        if self.tty:
            self.out.write("\r\x1b[K" + text)
            self._open = True
        elif time.monotonic() - self._last >= 1.0:
            self.out.write(text + "\n")
            self._last = time.monotonic()

    def line(self, text: str):
        self.out.write(("\r\x1b[K" if self._open else "") + text + "\n")
        self._open, self._last = False, 0.0

    def interject(self, text: str):
        """A line written straight to the file descriptor: safe from a signal handler that may have interrupted
        a write to `out`."""
        os.write(self.out.fileno(), ("\n" + text + "\n").encode())

    def close(self):
        self.out.close()


def _flush_c_stdout():
    """Blender prints through C stdio, which buffers: flush it before fd 1 changes hands."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C runtime by that name (Windows): nothing to flush here
        pass


@contextmanager
def quiet(log: Path, verbose: bool):
    """fd 1 (Cycles' `Fra:` lines, Blender's C prints) and Python's sys.stdout go to `log` unless verbose."""
    if verbose:
        yield
        return
    sys.stdout.flush()
    _flush_c_stdout()
    saved = os.dup(1)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", buffering=1) as f:
        os.dup2(f.fileno(), 1)
        try:
            with redirect_stdout(f):
                yield
        finally:
            sys.stdout.flush()
            _flush_c_stdout()
            os.dup2(saved, 1)
            os.close(saved)


class Interrupt:
    """The first SIGINT calls `on_first` (cancel the server's job) and lets the batch wind down; the second exits
    at once with 130."""

    def __init__(self, on_first):
        self.on_first = on_first
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            os._exit(130)
        self.requested = True
        self.on_first()

    def __enter__(self):
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)
