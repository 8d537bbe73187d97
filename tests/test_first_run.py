"""The artist's path with no terminal step, end to end: install the built zip into a fresh Blender user folder,
press Install Server and Cancel it (nothing half made is used), press it again (pip installs the pinned packages
from the package registry into a private environment in the extension's user folder, for real, finishing what
the cancelled run began), find the environment healthy, press it again (nothing to do), then
Generate: the add-on starts the server with that environment by itself on the tiny models and frames arrive.

Runs in its own process so the Blender user folder is fresh. The torch build is forced to the registry's build of
the pinned torch, the wheel this project's own environment uses, so pip's local files and cache serve it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_fresh_blender_to_first_animation(tiny_models, tmp_path):
    out = tmp_path / "report.json"
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender-user")}
    env.pop("MARIONETTE_SERVER_PYTHON", None)
    try:
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests" / "support" / "first_run.py"),
                str(out),
                str(tiny_models / "models.toml"),
                str(_free_port()),
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=2400,
        )
    finally:  # the environment is gigabytes: pytest keeps its last temporary folders
        shutil.rmtree(tmp_path / "blender-user" / "extensions" / ".user", ignore_errors=True)
    assert done.returncode == 0 and out.exists(), (done.stdout[-3000:], done.stderr[-5000:])
    report = json.loads(out.read_text())
    print(
        f"\nInstall Server took {report['install_seconds']} s; the second press {report['second_seconds']} s; "
        f"Generate (server start included) {report['generate_seconds']} s"
    )

    env_dir = Path(report["env_dir"])
    assert report["default_python"] == "", "a fresh install has no Server Python: Install Server provides it"
    assert report["cancelled_result"][0] == "ERROR" and "cancelled" in report["cancelled_result"][1]
    assert report["cancelled_health"] == "partial" and report["cancelled_python"] == "", (
        "a cancelled install is never used"
    )
    assert report["install_result"] == ["FINISHED"], report["install_status"]
    assert report["health"] == "healthy" and report["marker"]
    assert env_dir.is_relative_to(tmp_path / "blender-user"), "the environment lives in the user folder"
    assert report["server_python"] == str(env_dir / "bin" / "python"), "Server Python points at it by itself"
    assert report["second_result"] == ["FINISHED"] and report["second_status"].startswith("Nothing to do")
    assert report["second_seconds"] < 30

    assert report["generate_result"] == ["FINISHED"], (report["status"], report["error"])
    assert report["frames"] == [f"frame_{i:04d}.png" for i in range(1, 5)]
    assert report["served_by"]["service"] == "marionette"
    assert report["served_by"]["python"] == str(env_dir / "bin" / "python"), "the server ran in the new env"
