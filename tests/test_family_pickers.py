"""The pickers and the Models panel with a server whose folders hold SDXL, Pony, SD2, SD3 and Flux files beside the
SD1.5 ones (tests/support/tiny_families.py), through the installed extension and the real server: the pickers offer
SD1.5 names and those of unknown family only; the Models panel lists the others greyed with their family."""

from __future__ import annotations

import os

import bpy
import pytest
from conftest import TOKEN
from panel_driver import ext
from test_extension import point_at, scene_with_camera
from test_models_panel import draw, texts

from tests.support import tiny_families

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def family_server(tmp_path_factory, tiny_models):
    from backend import launcher

    python = os.environ.get("MARIONETTE_SERVER_PYTHON")
    toml = tiny_families.build_with(python, tmp_path_factory.mktemp("families"), tiny_models)
    data = tmp_path_factory.mktemp("served-families")
    server = launcher.start(
        python,
        args=["--models", str(toml), "--port", "0", "--data", str(data), "--token", TOKEN],
        log=data / "stdout.log",
        timeout=180,
    )
    yield server
    server.stop()


def offered(search, text=""):
    return search(bpy.context.scene.marionette, bpy.context, text)


def test_pickers_offer_sd15_and_unknown_names_and_the_models_panel_greys_the_rest(extension, family_server, tmp_path):
    scene_with_camera(tmp_path, frames=4, size=64, steps=1)
    point_at(extension, family_server.url)
    assert bpy.ops.marionette.refresh_models() == {"FINISHED"}
    props = ext("properties")
    assert offered(props._search("base")) == ["sd15"]  # not pony_v6, flux1-dev, v2-1_768, sd3_medium, ...
    assert offered(props._search("motion_module")) == ["v2"]  # not mm_sdxl, hotshot_xl, mm_sdxl_diffusers
    assert offered(props._search("controlnet")) == ["depth"]  # not xl_canny, xl_depth, xl_folder, sd21_depth
    assert offered(props._search("lora")) == ["sd15_real_width", "style", "t5xxl"]  # t5xxl: unknown family
    assert offered(props._search("lora"), "Pony") == [] and offered(props._search("lora"), "XL") == ["t5xxl"]
    assert offered(props._search_vae) == [props.CHECKPOINTS_OWN, "sdxl_vae", "tiny-ft"]  # SDXL's VAE: not told
    assert offered(ext("properties_stylise")._ip_adapters) == []  # only ip_adapter_sdxl is configured
    assert ext("backend.catalog").motion_info("v2")["max_frames"] == 32  # asked with the SD1.5 base

    assert bpy.ops.marionette.models_refresh() == {"FINISHED"}
    view = bpy.context.window_manager.marionette_models
    view.filter, view.other_families = "", True  # listed on request, greyed
    kinds = ext("properties_models").KINDS
    log = draw(
        folds={f"marionette_models_{kind}{state}": True for kind in kinds for state in ("", "_attention")}, scroll=True
    )
    greyed = set(texts(log, "greyed"))
    shown = {text: text not in greyed for text in texts(log)}
    for name, (kind, family, _) in tiny_families.FILES.items():
        if kind not in kinds:
            continue  # embeddings are not listed there
        if family in (None, "sd15"):
            assert shown[name] is True, name
        else:
            label = {"sdxl": "SDXL", "sd2": "SD2", "sd3": "SD3", "flux": "Flux", "sd3_flux": "SD3/Flux"}[family]
            assert shown[f"{name}: {label} — not usable with SD1.5"] is False, name
    assert shown["pony_v6: SDXL — not usable with SD1.5"] is False and shown["sd15"] is True


def test_a_typed_sdxl_checkpoint_is_refused_in_the_artists_words_before_any_render(extension, family_server, tmp_path):
    scene = scene_with_camera(tmp_path, frames=4, size=64, steps=1)
    s = scene.marionette
    point_at(extension, family_server.url)
    with pytest.raises(RuntimeError, match="is not on the server"):
        bpy.ops.marionette.generate()
    error = bpy.context.window_manager.marionette.error
    # the names offered instead of the missing Normal ControlNet are the SD1.5 ones (and those of unknown family)
    assert (
        "The Normal ControlNet 'normal' (Guides, the one an empty Model means) is not on the server. Pick one of: "
        "depth." in error
    )
    s.use_normal, s.lora_zoom_in = False, 0.0
    s.base = "pony_v6"  # typed by hand: the picker does not offer it
    with pytest.raises(RuntimeError, match="pony_v6 is an SDXL checkpoint"):
        bpy.ops.marionette.generate()
    error = bpy.context.window_manager.marionette.error  # the panel's label for the field, then the server's words
    assert "Checkpoint: pony_v6 is an SDXL checkpoint; Marionette runs SD1.5 checkpoints — pick an SD1.5 one" in error
    assert ext("operators.generate")._active.capture is None, "refused before any guide was rendered"
