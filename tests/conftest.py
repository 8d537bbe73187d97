"""Shared fixtures."""

from __future__ import annotations

import pytest

TOKEN = "s3cret"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The tiny random models (server/tiny.py), built once per test session; returns their root folder."""
    from server import tiny

    root = tmp_path_factory.mktemp("tiny-models")
    tiny.build(root)
    return root


@pytest.fixture(scope="session")
def tiny_server(tiny_models, tmp_path_factory):
    """The real server as a subprocess on a free loopback port, on tiny models, requiring TOKEN."""
    from backend import launcher

    data = tmp_path_factory.mktemp("served")
    # `--tiny` builds its models in DATA/tiny-models; reuse the session's copy.
    (data / "tiny-models").symlink_to(tiny_models, target_is_directory=True)
    server = launcher.start(args=["--tiny", "--port", "0", "--data", str(data), "--token", TOKEN],
                            log=data / "server.log", timeout=180)
    yield server
    server.stop()
