"""Install Server's pure parts: the torch build per platform and GPU, pip's output read as progress, failures
named, and the shipped requirements equal to pyproject's pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from backend.install_plan import PipProgress, choose_torch, failure_message

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "system, machine, nvidia, build, index",
    [
        ("Linux", "x86_64", True, "cuda", None),  # the registry's Linux wheel bundles CUDA
        ("Linux", "x86_64", False, "cpu", "https://download.pytorch.org/whl/cpu"),
        ("Linux", "aarch64", True, "cuda", "https://download.pytorch.org/whl/cu130"),
        ("Windows", "AMD64", True, "cuda", "https://download.pytorch.org/whl/cu130"),  # the registry's is CPU only
        ("Windows", "AMD64", False, "cpu", None),
        ("Darwin", "arm64", False, "mps", None),
        ("Darwin", "x86_64", False, "cpu", None),
    ],
)
def test_torch_build_follows_platform_and_gpu(system, machine, nvidia, build, index):
    choice = choose_torch(system, machine, nvidia)
    assert (choice.build, choice.index_url) == (build, index)
    assert choice.pip_args() == (["--index-url", index] if index else [])
    assert ("an NVIDIA GPU was found" in choice.reason) == (build == "cuda")


def test_the_user_overrides_the_choice_within_what_exists():
    assert choose_torch("Linux", "x86_64", True, "cpu").build == "cpu"
    assert choose_torch("Linux", "x86_64", False, "cuda").build == "cuda"
    registry = choose_torch("Linux", "x86_64", False, "registry")
    assert registry.build == "registry" and registry.pip_args() == []
    with pytest.raises(ValueError, match="only for macOS on Apple silicon"):
        choose_torch("Windows", "AMD64", True, "mps")
    with pytest.raises(ValueError, match="no CUDA torch build for macOS"):
        choose_torch("Darwin", "arm64", False, "cuda")
    with pytest.raises(ValueError, match="unknown torch build"):
        choose_torch("Linux", "x86_64", False, "rocm")


def test_pip_output_becomes_progress():
    p = PipProgress()
    for line in [
        "Collecting torch==2.14.1",
        "  Downloading torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl (915.3 MB)",
        "Progress 104857600 of 915300000",
    ]:
        p.feed(line)
    wheel = "torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert (p.phase, p.package, p.done, p.total) == ("downloading", wheel, 104857600, 915300000)
    assert p.describe() == "Downloading torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl: 105 / 915 MB"
    p.feed("Installing collected packages: numpy, torch")
    assert p.describe() == "Installing numpy, torch"
    p.feed("Successfully installed numpy-1.26.4 torch-2.14.1")
    assert p.phase == "installed"


@pytest.mark.parametrize(
    "log, says",
    [
        ("OSError: [Errno 28] No space left on device", "the disk is full"),
        (
            (
                "WARNING: Retrying ... NewConnectionError('Failed to establish a new connection')\n"
                "ERROR: Could not find a version that satisfies the requirement torch==2.14.1"
            ),
            "cannot reach the package registry",
        ),
        (
            (
                "ERROR: Could not find a version that satisfies the requirement torch==2.14.1\n"
                "ERROR: No matching distribution found for torch==2.14.1"
            ),
            "no build of torch==2.14.1",
        ),
        ("ERROR: something else broke", "something else broke"),
    ],
)
def test_pip_failures_are_named_with_what_to_do(log, says):
    assert says in failure_message(log, 1)


def test_shipped_requirements_are_pyproject_pins():
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    shipped = [
        line.split("#")[0].strip()
        for name in ("requirements-torch.txt", "requirements.txt")
        for line in (ROOT / "server" / name).read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    assert sorted(shipped) == sorted(p.split("#")[0].strip() for p in pins)
    assert all("==" in line for line in shipped)
