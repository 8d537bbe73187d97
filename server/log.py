"""The `marionette` logger: failing requests, job starts and ends with timings, and every unexpected exception
with its traceback and an error id (the id a 500 response carries), in a rotating `server.log` in the data folder.

Use `log` anywhere in the server (`from server.log import log`); `setup(folder)` attaches the file once per
folder; `log_exception(...)` records a traceback and returns the error id to show the client.
"""

from __future__ import annotations

import logging
import logging.handlers
import uuid
from pathlib import Path

LOGGER_NAME = "marionette"
LOG_FILE = "server.log"
MAX_BYTES = 5 * 2**20
BACKUPS = 3

log = logging.getLogger(LOGGER_NAME)
log.setLevel(logging.INFO)
log.propagate = False  # uvicorn and pytest configure the root logger; ours goes to its own file

_handlers: dict[Path, logging.Handler] = {}


def setup(folder: Path) -> Path:
    """Log to `folder/server.log` (rotated at 5 MiB, 3 kept). Idempotent per folder; returns the file's path."""
    path = (Path(folder) / LOG_FILE).resolve()
    if path not in _handlers:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        _handlers[path] = handler
    return path


def close(folder: Path):
    """Detach the file of `folder` (an app shutting down in a process that makes several, as tests do)."""
    handler = _handlers.pop((Path(folder) / LOG_FILE).resolve(), None)
    if handler is not None:
        log.removeHandler(handler)
        handler.close()


def new_error_id() -> str:
    return uuid.uuid4().hex[:12]


def log_exception(what: str, exc: BaseException) -> str:
    """Record `exc` with its traceback under a fresh error id and return the id."""
    error_id = new_error_id()
    log.error(
        "error %s: %s: %s: %s", error_id, what, type(exc).__name__, exc, exc_info=(type(exc), exc, exc.__traceback__)
    )
    return error_id
