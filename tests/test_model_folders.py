"""Preferences ▸ Model folders through the installed extension: Add Folder and Remove, what each folder holds in the
artist's words (no folders, a ComfyUI install, an empty folder, a missing folder), the folders passed to the server
the add-on starts, and the notice when the list changes while it runs."""

from __future__ import annotations

import json
import os
import socket
import sys

import bpy
import pytest
from panel_driver import Recorder, labels
from test_extension import PACKAGE

from tests.support import model_roots

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0

COMFY_LINE = "ComfyUI install: 2 checkpoints, 1 LoRA, 1 motion module, 1 motion LoRA, 1 IP-Adapter, 1 image encoder"


def ext(module):
    return sys.modules[f"{PACKAGE}.{module}"]


class Drawn:
    """The preferences as their draw() sees them, drawing into a recording layout."""

    def __init__(self, prefs, log):
        self.__dict__.update(_prefs=prefs, layout=Recorder(log))

    def __getattr__(self, name):
        return getattr(self._prefs, name)


def draw_preferences(prefs) -> list:
    log = []
    type(prefs).draw(Drawn(prefs, log), bpy.context)
    return log


@pytest.fixture
def prefs(extension):  # noqa: F811
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.model_roots.clear()
    yield prefs
    prefs.model_roots.clear()


@pytest.fixture(scope="module")
def installs(tiny_models, tmp_path_factory):
    return model_roots.build(tiny_models, tmp_path_factory.mktemp("installs"))


def test_every_state_of_the_list_in_the_artists_words(prefs, installs, tmp_path):
    ops = ext("operators.model_roots")
    log = draw_preferences(prefs)
    assert ext("panels.model_roots").EMPTY in labels(log) and ("operator", "marionette.model_root_add") in log

    _, comfy = installs
    (tmp_path / "empty").mkdir()
    assert bpy.ops.marionette.model_root_add(directory=str(comfy)) == {"FINISHED"}
    assert bpy.ops.marionette.model_root_add(directory=str(tmp_path / "empty")) == {"FINISHED"}
    assert bpy.ops.marionette.model_root_add(directory=str(comfy)) == {"CANCELLED"}  # in the list already
    with pytest.raises(RuntimeError, match="not a folder"):
        bpy.ops.marionette.model_root_add(directory=str(tmp_path / "gone"))
    prefs.model_roots.add().path = str(tmp_path / "gone")  # a folder deleted or a drive unplugged since
    assert ops.roots(prefs) == [str(comfy), str(tmp_path / "empty"), str(tmp_path / "gone")]
    for path in ops.roots(prefs):
        ops.line(path, wait=True)
    texts = labels(draw_preferences(prefs))
    assert COMFY_LINE in texts
    assert "no models found in this folder" in texts and "folder not found" in texts
    assert [t for t in texts if t in ops.roots(prefs)] == ops.roots(prefs)

    prefs.model_roots_index = 1
    assert bpy.ops.marionette.model_root_remove() == {"FINISHED"}
    assert ops.roots(prefs) == [str(comfy), str(tmp_path / "gone")]


def test_the_server_the_addon_starts_gets_the_folders_and_a_change_asks_for_a_restart(prefs, installs, tiny_models):
    a1111, comfy = installs
    ops = ext("operators.model_roots")
    saved = prefs.server_url, prefs.server_python, prefs.models_file, prefs.port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prefs.server_url, prefs.models_file, prefs.port = "", str(tiny_models / "models.toml"), port
    prefs.server_python = os.environ.get("MARIONETTE_SERVER_PYTHON") or sys.executable
    prefs.model_roots.add().path = str(comfy)
    bpy.ops.marionette.server_stop()
    try:
        assert bpy.ops.marionette.server_start() == {"FINISHED"}
        assert bpy.ops.marionette.models_refresh() == {"FINISHED"}
        models = ext("operators.models").cached_models(prefs)
        assert {"toonMix", "dreamyToon_v1"} <= {m["name"] for m in models["base"]}
        assert not ops.restart_needed(prefs)
        assert ext("panels.model_roots").RESTART not in labels(draw_preferences(prefs))

        prefs.model_roots.add().path = str(a1111)
        assert ops.restart_needed(prefs)
        log = draw_preferences(prefs)
        assert ext("panels.model_roots").RESTART in labels(log) and ("operator", "marionette.server_stop") in log
    finally:
        bpy.ops.marionette.server_stop()
        prefs.server_url, prefs.server_python, prefs.models_file, prefs.port = saved
    assert not ops.restart_needed(prefs)  # nothing of ours runs


def test_the_batch_starts_its_server_with_model_roots(extension, installs, tiny_models, tmp_path, capfd):  # noqa: F811
    """`batch --model-root DIR`: the server the batch starts offers the install's checkpoint by its name. The tiny
    single-file checkpoint takes the tiny base's config ([file_configs]), as a public one takes the shipped one."""
    from test_batch import MIXAMO, command, hero, record

    a1111, _ = installs
    toml = tiny_models / "models-with-roots.toml"  # beside models.toml: its relative paths hold
    toml.write_text((tiny_models / "models.toml").read_text() + '\n[file_configs]\nbase = "sd15"\n')
    blend = tmp_path / "hero.blend"
    hero(blend, actions=((MIXAMO, 2, 0.6),))
    out = tmp_path / "out"
    python = os.environ.get("MARIONETTE_SERVER_PYTHON")
    argv = ["--models-config", str(toml), "--model-root", str(a1111), "--base", "dreamyToon_v1"]
    argv += ["--out", str(out), "--steps", "1", "--depth", *(["--server-python", python] if python else [])]
    code = command(extension, blend, *argv)
    log = out / "server.log"
    assert code == 0, capfd.readouterr().out + (log.read_text()[-3000:] if log.exists() else "no server log")
    assert record(out, "Armature_mixamo.com_Layer0")["state"] == "done"
    (manifest,) = (out / "server" / "jobs").glob("*/manifest.json")
    assert json.loads(manifest.read_text())["plan"]["base"]["source"].endswith("dreamyToon_v1.safetensors")
    assert command(extension, blend, "--model-root", str(tmp_path / "nope"), "--out", str(out)) == 2
    said = capfd.readouterr()
    assert "--model-root" in said.err + said.out and "nope: folder not found" in said.err + said.out
