"""The extension zip, built with Blender's own tool, holds only what runs for a user: no tests, benches, CLI,
tiny-model writers, metrics, config generators or virtual environments."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import bpy  # noqa: F401  (Blender's extension tool comes with bpy; a missing bpy is a collection error)
import pytest

from cli import extension as extension_cli

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0

ROOT = Path(__file__).resolve().parent.parent
# What a user's Blender runs: the add-on and the server it starts (with the server's model configs).
SHIPPED_ROOTS = (
    "__init__.py",
    "blender_manifest.toml",
    "properties.py",
    "properties_stylise.py",
    "properties_models.py",
    "preferences.py",
    "README.md",
    "backend/",
    "batch/",
    "operators/",
    "panels/",
    "server/",
)
TEST_ONLY = (
    "tests/",
    "bench/",
    "cli/",
    "tools/",
    "docs/",
    "deploy/",
    ".venv",
    "out/",
    "data/",
    "dist/",
    ".git/",
    "Makefile",
    "pyproject.toml",
)
TEST_ONLY_NAMES = ("tiny", "metrics", "make_configs", "fullsize", "conftest", "original_layout", "test_")


@pytest.fixture(scope="module")
def names(tmp_path_factory) -> list[str]:
    return zipfile.ZipFile(extension_cli.build(tmp_path_factory.mktemp("zip"))).namelist()


def test_the_zip_holds_only_what_runs_for_a_user(names):
    assert not [n for n in names if n.startswith(TEST_ONLY)], names
    assert not [n for n in names if any(word in Path(n).name for word in TEST_ONLY_NAMES)], names
    assert not [n for n in names if not n.startswith(SHIPPED_ROOTS)], names


def test_the_zip_holds_every_tracked_file_the_add_on_and_server_run(names):
    tracked = subprocess.run(
        ["git", "ls-files", *SHIPPED_ROOTS], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    expected = {n for n in tracked if (ROOT / n).exists()}
    assert expected and expected <= set(names), sorted(expected - set(names))
    assert "server/protocol/__init__.py" in names and "server/default_models.toml" in names
    assert any(n.startswith("server/configs/sd15/") for n in names)
