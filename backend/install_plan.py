"""Which torch build fits this machine, and reading pip's output as progress. Pure functions; no bpy.

The choice is a function of what was detected (platform, machine, whether `nvidia-smi` lists a GPU) and the user's
override, so every platform's answer is tested here without that platform.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TORCH_INDEX = "https://download.pytorch.org/whl"
CUDA_TAG = "cu130"  # the CUDA line the pinned torch's Linux registry build uses
BUILDS = ("auto", "cuda", "cpu", "mps", "registry")


@dataclass(frozen=True)
class TorchChoice:
    build: str  # "cuda" | "cpu" | "mps" | "registry"
    reason: str  # one line for the panel: which and why
    index_url: str | None = None  # pip --index-url for torch and torchvision; None: the regular registry

    def pip_args(self) -> list[str]:
        return ["--index-url", self.index_url] if self.index_url else []


def choose_torch(system: str, machine: str, has_nvidia: bool, override: str = "auto") -> TorchChoice:
    """system as platform.system() ("Linux", "Windows", "Darwin"), machine as platform.machine()."""
    machine = machine.lower()
    apple_silicon = system == "Darwin" and machine in ("arm64", "aarch64")
    if override not in BUILDS:
        raise ValueError(f"unknown torch build {override!r}; choose one of {', '.join(BUILDS)}")
    if override == "registry":
        return TorchChoice("registry", "as chosen: the package registry's default build of the pinned torch")
    if override == "mps" and not apple_silicon:
        raise ValueError("the MPS (Metal) build exists only for macOS on Apple silicon")
    if override in ("cuda", "cpu") and system == "Darwin":
        raise ValueError(f"there is no {override.upper()} torch build for macOS; choose mps or auto")
    build = override
    if build == "auto":
        if apple_silicon:
            build = "mps"
        elif system == "Darwin":
            build = "cpu"
        else:
            build = "cuda" if has_nvidia else "cpu"
    why = (
        "as chosen"
        if override != "auto"
        else {
            "mps": "Apple silicon: the macOS arm64 build runs on the GPU through Metal (MPS)",
            "cuda": f"an NVIDIA GPU was found (nvidia-smi) on {system}",
            "cpu": (
                "an Intel Mac: no GPU build of torch exists for it"
                if system == "Darwin"
                else f"no NVIDIA GPU was found (no working nvidia-smi) on {system}"
            ),
        }[build]
    )
    if build == "mps":
        return TorchChoice("mps", f"{why}; the registry's macOS build")
    if build == "cuda":
        if system == "Linux" and machine in ("x86_64", "amd64"):
            return TorchChoice("cuda", f"{why}: the registry's Linux build, which bundles CUDA")
        return TorchChoice(
            "cuda", f"{why}: the CUDA build ({CUDA_TAG}) from the PyTorch index", f"{TORCH_INDEX}/{CUDA_TAG}"
        )
    if system == "Windows" or system == "Darwin":
        return TorchChoice("cpu", f"{why}: the registry's build (CPU only)")
    return TorchChoice(
        "cpu", f"{why}: the small CPU-only build from the PyTorch index (no CUDA libraries)", f"{TORCH_INDEX}/cpu"
    )


_SIZE = re.compile(r"([\d.]+) (kB|MB|GB|KB|bytes)")
_UNITS = {"bytes": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}


@dataclass
class PipProgress:
    """What pip is doing, from its output lines (run with --progress-bar raw where pip has it)."""

    phase: str = "starting"
    package: str = ""
    done: int = 0
    total: int = 0
    downloaded: int = 0  # bytes of the files finished so far
    errors: list[str] = field(default_factory=list)

    def feed(self, line: str):
        line = line.strip()
        if m := re.match(r"Collecting (\S+)", line):
            self.phase, self.package, self.done, self.total = "resolving", m[1], 0, 0
        elif m := re.match(r"Downloading (\S+)(?: \((.*)\))?", line):
            self.phase, self.package, self.done = "downloading", m[1].rsplit("/", 1)[-1], 0
            size = _SIZE.search(m[2] or "")
            self.total = int(float(size[1]) * _UNITS[size[2]]) if size else 0
        elif m := re.match(r"Progress (\d+) of (\d+)", line):
            self.done, self.total = int(m[1]), int(m[2])
            if self.done == self.total:
                self.downloaded += self.total
        elif m := re.match(r"(?:Using cached|Processing) (\S+)", line):
            self.package = m[1].rsplit("/", 1)[-1]
        elif line.startswith("Installing collected packages:"):
            self.phase, self.package, self.done, self.total = "installing", line.split(":", 1)[1].strip()[:80], 0, 0
        elif line.startswith("Successfully installed"):
            self.phase = "installed"
        elif line.startswith("ERROR:"):
            self.errors.append(line)

    def describe(self) -> str:
        if self.phase == "downloading" and self.total:
            return f"Downloading {self.package}: {self.done / 1e6:.0f} / {self.total / 1e6:.0f} MB"
        if self.phase == "installing":
            return f"Installing {self.package}"
        if self.package:
            return f"{self.phase.capitalize()} {self.package}"
        return self.phase.capitalize()


def failure_message(log_text: str, exit_code: int) -> str:
    """What went wrong in a pip run, as one line that names what to do."""
    text = log_text[-20000:]
    if "No space left on device" in text or "[Errno 28]" in text:
        return "the disk is full: free some space (the server needs about 6 GB) and press Install Server again"
    if re.search(
        r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
        r"Network is unreachable|ConnectTimeout|Read timed out|ProxyError",
        text,
    ):
        return (
            "cannot reach the package registry: check the network connection (or proxy) and press Install "
            "Server again; what was downloaded is kept"
        )
    if "No matching distribution found" in text or "Could not find a version that satisfies" in text:
        wanted = re.findall(r"No matching distribution found for (\S+)", text)
        return (
            f"the package registry has no build of {wanted[-1] if wanted else 'a required package'} for this "
            f"Python and platform: try another torch build in the preferences"
        )
    errors = [line.strip() for line in text.splitlines() if line.strip().startswith("ERROR:")]
    return f"pip failed (exit code {exit_code}): {errors[-1][:200] if errors else 'see the install log'}"
