"""Install Server's failures, for real: a Python that is not 3.11, no network (pip cannot reach any index), an
environment whose Python is broken. Each gives a clear message and nothing half done counts as healthy."""

from __future__ import annotations

import glob
import os
import shutil
import sys
import threading
import time

from backend import installer
from backend.install_plan import choose_torch

REGISTRY = choose_torch("Linux", "x86_64", False, "registry")


def _other_python() -> str:
    """A Python that runs and is not 3.11 (pyenv's shims exist for versions that are not active: tried first)."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[023]*/bin/python3")))
    candidates += [p for p in (shutil.which(n) for n in ("python3.12", "python3.10", "python3.13")) if p]
    for python in candidates:
        try:
            if installer.python_version(python) != (3, 11):
                return python
        except installer.InstallError:
            continue
    raise AssertionError("these tests need a Python other than 3.11 (e.g. python3.12) on this machine")


def test_a_python_that_is_not_311_is_refused_before_anything_is_made(tmp_path):
    job = installer.Installer(tmp_path / "env", tmp_path / "install.log", REGISTRY, python=_other_python())
    job.run()
    assert job.state == "failed"
    assert "the server needs Python 3.11" in job.message and "name a Python 3.11" in job.message
    assert not (tmp_path / "env").exists()


def test_no_network_fails_clearly_and_the_half_made_env_is_not_healthy(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no local wheel folders or mirrors from pip's config
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
        monkeypatch.delenv(name, raising=False)
    env = tmp_path / "env"
    job = installer.Installer(
        env,
        tmp_path / "install.log",
        REGISTRY,
        python=sys.executable,
        pip_args=["--index-url", "http://127.0.0.1:9/simple", "--retries", "1", "--timeout", "3"],
    )
    job.run()
    assert job.state == "failed", job.message
    assert "cannot reach the package registry" in job.message and "install log" in job.message
    assert "Traceback" not in job.message
    assert installer.health(env)[0] == "partial" and installer.marker(env) is None
    assert "$ " in (tmp_path / "install.log").read_text(), "the log has what ran"


def test_health_tells_absent_broken_and_partial_apart(tmp_path):
    env = tmp_path / "env"
    assert installer.health(env)[0] == "absent"
    python = installer.env_python(env)
    python.parent.mkdir(parents=True)
    python.write_text("not a program")
    state, line = installer.health(env)
    assert state == "broken" and "Repair" in line
    python.unlink()
    os.symlink(sys.executable, python)
    assert installer.health(env)[0] == "partial"
    (env / installer.MARKER).write_text('{"requirements": "older", "torch": "2.0"}')
    assert installer.health(env)[0] == "outdated"


def test_cancel_stops_pip_and_leaves_no_marker(tmp_path):
    env = tmp_path / "env"
    job = installer.Installer(env, tmp_path / "install.log", REGISTRY, python=sys.executable)

    def press_cancel_when_pip_runs():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not job.message.startswith(("Installing", "Updating")):
            time.sleep(0.05)
        time.sleep(0.5)
        job.cancel()

    threading.Thread(target=press_cancel_when_pip_runs, daemon=True).start()
    job.run()
    assert job.state == "cancelled" and "press Install Server again" in job.message
    assert installer.marker(env) is None and installer.health(env)[0] == "partial"
