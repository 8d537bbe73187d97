"""Shared fixtures."""

from __future__ import annotations

import os

import pytest

TOKEN = "s3cret"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The tiny random models (tests/support/tiny_models.py) and their models.toml, built once per test session;
    returns their root folder. Built by $MARIONETTE_SERVER_PYTHON when set: the Blender 5.0 test run has bpy but
    not the server's stack."""
    from tests.support import tiny_models as tiny

    root = tmp_path_factory.mktemp("tiny-models")
    tiny.build_with(os.environ.get("MARIONETTE_SERVER_PYTHON"), root)
    return root


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory, tiny_models):
    """The real server as a subprocess on a free loopback port, on the tiny models, requiring TOKEN.

    It runs on $MARIONETTE_SERVER_PYTHON when set, like the tiny models' build.
    """
    from backend import launcher

    data = tmp_path_factory.mktemp("served")
    server = launcher.start(os.environ.get("MARIONETTE_SERVER_PYTHON"),
                            args=["--models", str(tiny_models / "models.toml"), "--port", "0", "--data", str(data),
                                  "--token", TOKEN],
                            log=data / "stdout.log", timeout=180)
    yield server
    server.stop()
