"""Shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The tiny random models (server/tiny.py), built once per test session; returns their root folder."""
    from server import tiny

    root = tmp_path_factory.mktemp("tiny-models")
    tiny.build(root)
    return root
