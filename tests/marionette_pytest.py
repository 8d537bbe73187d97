"""Pytest plugin loaded first (`-p marionette_pytest` in pyproject).

- The repository root is the Blender extension, so it has an `__init__.py`; pytest would collect the root as a
  package and import that add-on `__init__` (and bpy) under the checkout folder's name. The root is collected as a
  plain directory instead: tests import `server` and `backend` as top-level packages, and the add-on only as the
  installed extension.
- Blender's user folders (extensions, config) go to a throwaway folder, never the developer's home. This must be
  set before anything imports bpy.
- `-m blender` (the Blender 5.0 run of `make test`, whose venv has bpy but not the server's stack) collects only
  the test files that carry the marker, found from their text: no hand-kept list, and the server-side files,
  which import torch at the top, are not imported there. Every file that is collected must import: a missing
  bpy or server stack is a collection error, never a skip.
- Triton's LLVM is loaded before anything can render with OpenGL (see `load_triton_first`).
"""

import importlib.util
import os
import sys
import tempfile

import pytest

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="marionette-blender-user-"))


def load_triton_first() -> None:
    """Load triton's library now, when the server stack is installed (the Blender 5.0 venv has none).

    A Workbench or EEVEE render makes Blender open an OpenGL driver; headless that is Mesa's llvmpipe, which Mesa
    opens with RTLD_GLOBAL, so the system's libLLVM-15 joins the process-wide symbol scope. triton's libtriton.so
    carries its own, newer LLVM with its symbols exported, and a library loaded after that binds some of them
    (`llvm::DebugCounter::instance` among them) to LLVM 15's: its static initialisers then crash in `free`
    (`import diffusers` imports torch._dynamo, which imports triton). Loaded before the driver, libtriton's symbols
    are bound to itself once and for all (Python opens extensions RTLD_NOW, RTLD_LOCAL). The add-on is not
    exposed: Blender's Python never imports torch or triton, the server runs in its own process."""
    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


load_triton_first()


BLENDER_MARK = "pytest.mark.blender"


def pytest_ignore_collect(collection_path, config):
    expr = (config.getoption("markexpr", "") or "").split()
    if "blender" not in expr or "not" in expr[: expr.index("blender")][-1:]:
        return None
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return BLENDER_MARK not in collection_path.read_text(encoding="utf-8")
    return None


def pytest_collect_directory(path, parent):
    if path == parent.config.rootpath:
        return pytest.Dir.from_parent(parent, path=path)
    return None


# The bpy module can hang in its own exit handlers after a long session (seen after "323 passed": the process
# asleep with its threads, never exiting; building Rigify shows the same). Once pytest has reported everything,
# the process leaves with pytest's exit status without running interpreter finalisation.
_exit_status = None


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if _exit_status is not None and "bpy" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)
