"""Shared fixtures."""

from __future__ import annotations

import os
import sys

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


@pytest.fixture(scope="module")
def store(tiny_models):
    """A ModelStore on the tiny models (CPU, float32), one per test module: modules change its pipelines."""
    from server.engine.store import ModelStore
    from server.loaders import ModelConfig

    return ModelStore(ModelConfig.load(tiny_models / "models.toml"), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def pipe(store):
    """The store's (sd15, v2) pipeline with no LoRA."""
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    return pipe


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory, tiny_models):
    """The real server as a subprocess on a free loopback port, on the tiny models, requiring TOKEN.

    It runs on $MARIONETTE_SERVER_PYTHON when set, like the tiny models' build.
    """
    from backend import launcher

    data = tmp_path_factory.mktemp("served")
    server = launcher.start(
        os.environ.get("MARIONETTE_SERVER_PYTHON"),
        args=["--models", str(tiny_models / "models.toml"), "--port", "0", "--data", str(data), "--token", TOKEN],
        log=data / "stdout.log",
        timeout=180,
    )
    yield server
    server.stop()


RAY_REPLICAS = 2


@pytest.fixture(scope="session")
def ray_server(tmp_path_factory, tiny_models):
    """The same server as a Ray Serve application (`python -m server --ray`) on a local Ray cluster started by it:
    two generator replicas on CPU (half a CPU each), the tiny models, TOKEN, and a model root (`server.model_root`,
    a folder holding the tiny LoRA as loras/rootStyle.safetensors). Needs the ray extra."""
    import shutil

    from backend import launcher

    data = tmp_path_factory.mktemp("served-ray")
    root = tmp_path_factory.mktemp("ray-model-root")
    (root / "loras").mkdir()
    shutil.copyfile(tiny_models / "lora" / "style.safetensors", root / "loras" / "rootStyle.safetensors")
    args = ["--ray", "--replicas", str(RAY_REPLICAS), "--replica-gpus", "0", "--replica-cpus", "0.5"]
    server = launcher.start(
        os.environ.get("MARIONETTE_SERVER_PYTHON"),
        args=[*args, "--models", str(tiny_models / "models.toml"), "--port", "0", "--data", str(data)]
        + ["--token", TOKEN, "--max-upload-mb", "4", "--model-root", str(root)],
        log=data / "stdout.log",
        timeout=300,
        env={"RAY_ADDRESS": "", "RAY_DEDUP_LOGS": "0"},
    )
    server.data, server.model_root = data, root
    yield server
    server.stop(timeout=60)


@pytest.fixture(scope="session")
def installed_extension(tmp_path_factory):
    """The extension built by Blender's own tool and installed from its zip, once per test session (into the
    throwaway user folder tests/marionette_pytest.py sets up). Tests take `extension`, never this."""
    import zipfile

    import bpy

    from cli import extension as extension_cli

    # A second install in one session would re-register the add-on over whatever the tests before left running
    # (a job, its timers and handlers), and hand out a module that is not the one registered: import no fixture
    # by name into a test module (tests/test_fixture_sharing.py), conftest's are seen everywhere.
    assert extension_cli.PACKAGE not in bpy.context.preferences.addons, "the extension is installed once a session"
    zip_path = extension_cli.build(tmp_path_factory.mktemp("ext"))
    names = zipfile.ZipFile(zip_path).namelist()
    assert "blender_manifest.toml" in names and "server/protocol/__init__.py" in names and "batch/run.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", ".venv", "demo/", "cli/"))]
    extension_cli.install(zip_path)
    yield extension_cli.PACKAGE
    bpy.ops.preferences.addon_disable(module=extension_cli.PACKAGE)


@pytest.fixture
def extension(installed_extension):
    """The installed extension's module, enabled: a test before may have read Blender's factory settings, which
    switch extensions off."""
    import bpy

    if installed_extension not in bpy.context.preferences.addons:
        bpy.ops.preferences.addon_enable(module=installed_extension)
    return sys.modules[installed_extension]
