"""Start and stop the generation server as a subprocess of the user's server Python. Standard library only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

EXTENSION_ROOT = Path(__file__).resolve().parent.parent
_READY = re.compile(r"Marionette server ready at (http://\S+)")


class LaunchError(RuntimeError):
    pass


@dataclass
class ServerProcess:
    process: subprocess.Popen
    url: str
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0):
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    python: str | None = None,
    args: list[str] = (),
    log: Path | None = None,
    timeout: float = 300.0,
    env: dict | None = None,
) -> ServerProcess:
    """Run `python -m server ARGS` from the extension folder; return once it prints its URL.

    Output goes to `log` (default: server.log in the data folder or the temp folder), which every error names.
    """
    python = python or sys.executable
    log = Path(log or Path(os.environ.get("TMPDIR", "/tmp")) / "marionette-server.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [python, "-u", "-m", "server", *args],
            cwd=EXTENSION_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env} if env else None,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = _READY.search(text)
        if found:
            return ServerProcess(process, found.group(1), log)
        if process.poll() is not None:
            raise LaunchError(_why_it_exited(python, process.returncode, text, log))
        time.sleep(0.1)
    process.kill()
    raise LaunchError(f"the server did not get ready within {timeout:.0f} s; log: {log}")


def _why_it_exited(python: str, code: int, text: str, log: Path) -> str:
    """One line saying why the server stopped and what to do, from the end of its log."""
    missing = re.search(r"No module named '([^']+)'", text)
    if missing:
        return (
            f"the Server Python {python} lacks the server's packages (no module {missing[1]!r}): press "
            f"Install Server in Preferences > Add-ons > Marionette, or name a Python that has them; log: {log}"
        )
    lines = [line for line in text.splitlines() if line.strip()]
    last = lines[-1].strip() if lines else "no output"
    return f"the server exited with code {code} before it was ready: {last[:300]}; log: {log}"
