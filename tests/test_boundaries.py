"""The process boundary: Blender-side code never imports the server's stack, the server never imports bpy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLENDER_SIDE = [
    "__init__.py",
    "properties.py",
    "properties_stylise.py",
    "properties_models.py",
    "preferences.py",
    "backend",
    "operators",
    "panels",
    "batch",
]
FORBIDDEN_IN_BLENDER = {
    "torch",
    "diffusers",
    "transformers",
    "controlnet_aux",
    "PIL",
    "safetensors",
    "fastapi",
    "uvicorn",
    "starlette",
    "peft",
    "accelerate",
    "cv2",
    "httpx",
    "huggingface_hub",
}

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0


def python_files(names):
    for name in names:
        path = ROOT / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(path.rglob("*.py"))


def imported_roots(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {(a.name.split(".")[0], node.lineno) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


def test_blender_side_imports_no_server_stack():
    files = list(python_files(BLENDER_SIDE))
    assert any(f.parent.name == "backend" for f in files), "the scan must see the backend package"
    bad = [
        f"{f.relative_to(ROOT)}:{line} imports {mod}"
        for f in files
        for mod, line in imported_roots(f)
        if mod in FORBIDDEN_IN_BLENDER
    ]
    assert not bad, bad


def test_server_never_imports_bpy():
    files = list(python_files(["server"]))
    bad = [
        f"{f.relative_to(ROOT)}:{line}"
        for f in files
        for mod, line in imported_roots(f)
        if mod in {"bpy", "mathutils", "bpy_extras"}
    ]
    assert not bad, bad


def test_protocol_is_standard_library_only():
    code = (
        "import sys; import server.protocol, backend.client, backend.launcher; "
        "heavy = {'torch', 'numpy', 'diffusers', 'PIL', 'fastapi'} & set(sys.modules); "
        "print(sorted(heavy)); sys.exit(1 if heavy else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
