"""Install Server: a private Python environment with the server's pinned packages, made in the background.

Steps: check the Python is 3.11, make the venv, pip-install torch (the build `install_plan.choose_torch` picked)
then the shipped `server/requirements.txt`, import-check the result, and only then write the marker file
`marionette-env.json`. An environment without the marker is never used as healthy: a cancelled, failed or
interrupted install is finished ("repaired") by the next press, which pip does by skipping what is already there.
Everything pip prints goes to the install log. Standard library only; no bpy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from .install_plan import PipProgress, TorchChoice, failure_message

EXTENSION_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = EXTENSION_ROOT / "server" / "requirements.txt"
TORCH_REQUIREMENTS = EXTENSION_ROOT / "server" / "requirements-torch.txt"
MARKER = "marionette-env.json"
IMPORT_CHECK = (
    "import torch, torchvision, diffusers, transformers, fastapi, uvicorn, huggingface_hub, PIL, "
    "controlnet_aux; print(torch.__version__)"
)


class InstallError(RuntimeError):
    pass


def env_python(env_dir: Path) -> Path:
    env_dir = Path(env_dir)
    return env_dir / "Scripts" / "python.exe" if os.name == "nt" else env_dir / "bin" / "python"


def requirements_hash() -> str:
    h = hashlib.sha256()
    for path in (TORCH_REQUIREMENTS, REQUIREMENTS):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def marker(env_dir: Path) -> dict | None:
    try:
        return json.loads((Path(env_dir) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def health(env_dir: Path) -> tuple[str, str]:
    """("healthy" | "outdated" | "partial" | "broken" | "absent", one line for the panel)."""
    env_dir = Path(env_dir)
    if not env_dir.exists():
        return "absent", "not installed"
    python = env_python(env_dir)
    try:
        ok = (
            python.is_file()
            and subprocess.run([str(python), "-c", "pass"], timeout=30, capture_output=True).returncode == 0
        )
    except (OSError, subprocess.SubprocessError):
        ok = False
    if not ok:
        return "broken", f"broken (its Python does not run): Repair makes it again in {env_dir}"
    found = marker(env_dir)
    if found is None:
        return "partial", "unfinished (an install was stopped or failed): Repair finishes it"
    if found.get("requirements") != requirements_hash():
        return "outdated", "installed for an older version of the extension: Update installs the new packages"
    return "healthy", f"ready: torch {found.get('torch')} ({found.get('build')}), Python {found.get('python')}"


def python_version(python: str) -> tuple[int, int]:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise InstallError(f"cannot run the Python {python}: {e}; name a Python 3.11 in the preferences") from None
    if out.returncode != 0:
        raise InstallError(f"cannot run the Python {python} (exit code {out.returncode}); name a Python 3.11")
    major, minor = (int(x) for x in out.stdout.split())
    return major, minor


class Installer:
    """One install run; `start()` runs it in a thread, the panel reads `state`, `message` and `fraction`."""

    def __init__(
        self,
        env_dir: Path,
        log: Path,
        choice: TorchChoice,
        python: str | None = None,
        pip_args: list[str] | None = None,
    ):
        self.env_dir, self.log, self.choice = Path(env_dir), Path(log), choice
        self.python = python or sys.executable
        self.pip_args = list(pip_args or [])
        self.state = "idle"  # idle | running | done | failed | cancelled
        self.message = ""
        self.fraction = 0.0
        self.seconds = 0.0
        self.progress = PipProgress()
        self._process: subprocess.Popen | None = None
        self._cancelled = threading.Event()
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------------------------
    def start(self):
        self.state = "running"
        self._thread = threading.Thread(target=self.run, name="marionette-install", daemon=True)
        self._thread.start()

    def cancel(self):
        self._cancelled.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def wait(self, timeout: float | None = None):
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the run ----------------------------------------------------------------------------------------
    def run(self):
        self.state, started = "running", time.monotonic()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.log, "a", encoding="utf-8") as log:
                log.write(
                    f"\n=== Install Server {time.strftime('%Y-%m-%d %H:%M:%S')}: {self.env_dir}, torch build "
                    f"{self.choice.build} ({self.choice.reason})\n"
                )
                self._steps(log)
            self.state = "done"
        except InstallError as e:
            self.state = "cancelled" if self._cancelled.is_set() else "failed"
            self.message = str(e)
        except OSError as e:  # e.g. the user folder cannot be written
            self.state, self.message = "failed", f"{e}; install log: {self.log}"
        finally:
            self.seconds = time.monotonic() - started

    def _steps(self, log):
        found, _ = health(self.env_dir)
        if found == "healthy":
            self.message, self.fraction = "The server environment is already installed and healthy", 1.0
            return
        self._say("Checking the Python", 0.01)
        version = python_version(self.python)
        if version != (3, 11):
            raise InstallError(
                f"{self.python} is Python {version[0]}.{version[1]}; the server needs Python 3.11 "
                f"(Blender 4.2 to 5.x bundles it): name a Python 3.11 in the preferences"
            )
        if found == "broken":
            self._say("Removing the broken environment", 0.02)
            shutil.rmtree(self.env_dir)
        python = env_python(self.env_dir)
        if not python.is_file():
            self._say(f"Creating the environment in {self.env_dir}", 0.03)
            self._run([self.python, "-m", "venv", str(self.env_dir)], log, "making the environment")
        base = [
            str(python),
            "-u",
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--no-compile",
            *self.pip_args,
        ]
        if not self._pip_reports_bytes(python):  # an older bundled pip prints no byte counts to a pipe
            self._say("Updating pip", 0.04)
            self._run([*base, "--progress-bar", "off", "pip>=24.1"], log, "updating pip")
        pip = [*base, "--progress-bar", "raw"]
        self._say(f"Installing torch ({self.choice.build})", 0.05)
        self._run(
            [*pip, *self.choice.pip_args(), "-r", str(TORCH_REQUIREMENTS)], log, "installing torch", span=(0.05, 0.6)
        )
        self._say("Installing the server's packages", 0.6)
        self._run(
            [*pip, "-r", str(REQUIREMENTS), "-c", str(TORCH_REQUIREMENTS)],
            log,
            "installing the server's packages",
            span=(0.6, 0.9),
        )
        self._say("Checking that the server's packages import", 0.92)
        out = self._run([str(python), "-c", IMPORT_CHECK], log, "checking the installed packages")
        torch_version = out.strip().splitlines()[-1] if out.strip() else "?"
        (self.env_dir / MARKER).write_text(
            json.dumps(
                {
                    "requirements": requirements_hash(),
                    "build": self.choice.build,
                    "reason": self.choice.reason,
                    "torch": torch_version,
                    "python": f"{version[0]}.{version[1]}",
                    "installed": time.strftime("%Y-%m-%d %H:%M:%S"),
                },
                indent=1,
            )
        )
        self.message, self.fraction = f"Installed: torch {torch_version} ({self.choice.build})", 1.0

    @staticmethod
    def _pip_reports_bytes(python: Path) -> bool:
        """Whether the environment's pip has `--progress-bar raw` (pip 24.1 on)."""
        out = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, text=True)
        try:
            return tuple(int(x) for x in out.stdout.split()[1].split(".")[:2]) >= (24, 1)
        except (IndexError, ValueError):
            return False

    def _say(self, message: str, fraction: float):
        if self._cancelled.is_set():
            raise InstallError("Install cancelled; press Install Server again to finish it")
        self.message, self.fraction = message, fraction

    def _run(self, command: list[str], log, what: str, span: tuple[float, float] | None = None) -> str:
        if self._cancelled.is_set():
            raise InstallError("Install cancelled; press Install Server again to finish it")
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        self.progress = PipProgress()
        lines, started = [], time.monotonic()
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONNOUSERSITE": "1"},
        )
        packages = 0
        for line in self._process.stdout:
            log.write(line)
            lines.append(line)
            before = self.progress.package
            self.progress.feed(line)
            if span:
                if self.progress.package != before:
                    packages += 1
                # pip cannot say how many packages are left: creep toward the end of the step's span
                self.fraction = span[0] + (span[1] - span[0]) * (1 - 0.9**packages)
                self.message = self.progress.describe()
        code = self._process.wait()
        log.write(f"# {what}: exit code {code} after {time.monotonic() - started:.0f} s\n")
        log.flush()
        if self._cancelled.is_set():
            raise InstallError("Install cancelled; press Install Server again to finish it")
        if code != 0:
            text = "".join(lines)
            is_pip = "pip" in command[:4]
            detail = failure_message(text, code) if is_pip else (text.strip().splitlines() or ["no output"])[-1]
            raise InstallError(f"{what} failed: {detail}; install log: {self.log}")
        return "".join(lines)


current: Installer | None = None
