"""Pytest plugin loaded first (`-p marionette_pytest` in pyproject).

- The repository root is the Blender extension, so it has an `__init__.py`; pytest would collect the root as a
  package and import that add-on `__init__` (and bpy) under the checkout folder's name. The root is collected as a
  plain directory instead: tests import `server` and `backend` as top-level packages, and the add-on only as the
  installed extension.
- Blender's user folders (extensions, config) go to a throwaway folder, never the developer's home. This must be
  set before anything imports bpy.
"""

import os
import tempfile

import pytest

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="marionette-blender-user-"))


def pytest_collect_directory(path, parent):
    if path == parent.config.rootpath:
        return pytest.Dir.from_parent(parent, path=path)
    return None
