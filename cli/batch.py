"""Development wrapper of the extension's batch command (`blender -b FILE --command marionette batch ...`).

    .venv/bin/python -m cli.batch hero.blend --tiny --armature Hero --out out/hero      # offline, tiny models
    .venv/bin/python -m cli.batch hero.blend --armature Hero --server http://gpu:8420 --token T --directions 8

It builds the extension from this checkout and installs it into a temporary Blender user folder (never the real
one), opens the .blend, and runs the command the extension registered with the remaining options (see
`batch --help`). `--tiny` builds the tiny random models and starts the server on their config.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

if "BLENDER_USER_RESOURCES" not in os.environ:  # before bpy is imported: keep the user's Blender folders untouched
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="marionette-blender-user-")

import bpy

from cli import extension


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    blend = argv.pop(0) if argv and not argv[0].startswith("-") else None
    if blend and not Path(blend).is_file():
        print(f"batch: {blend}: no such .blend file", file=sys.stderr)
        return 2
    tiny = "--tiny" in argv
    if tiny:
        argv.remove("--tiny")
    module = extension.install()
    if blend:
        bpy.ops.wm.open_mainfile(filepath=str(Path(blend).resolve()))
    if tiny:
        from tests.support import tiny_models

        out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else Path("marionette_batch")
        python = argv[argv.index("--server-python") + 1] if "--server-python" in argv else None
        print("building the tiny models ...", flush=True)  # by the server's Python: bpy's may have no torch
        argv += ["--models-config", str(tiny_models.build_with(python, out.resolve() / "tiny-models"))]
    return module.batch.execute(["batch", *argv])


if __name__ == "__main__":
    sys.exit(main())
