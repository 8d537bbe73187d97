"""The model folders an install's own settings add: ComfyUI's extra_model_paths.yaml (read as ComfyUI reads it, by
a small reader checked against PyYAML on the shapes ComfyUI's example and its users write) and A1111's
COMMANDLINE_ARGS in webui-user.bat/.sh; listed in the install's order, named in the add-on's summary, served by
the model config."""

from __future__ import annotations

import pytest
import yaml

from server import install_configs, model_layouts
from server.loaders import ModelConfig

# The shape of ComfyUI's extra_model_paths.yaml.example, filled in as its users do: the a111 section with a
# multi-line `loras` block, a commented-out section, an `is_default` section with quoted paths, a section of an
# arbitrary name with keys ComfyUI has no models for, an empty section and comments after values.
EXAMPLE = """#Rename this to extra_model_paths.yaml and ComfyUI will load it


#config for a1111 ui
#all you have to do is change the base_path to where yours is installed
a111:
    base_path: {a1111}

    checkpoints: models/Stable-diffusion
    configs: models/Stable-diffusion
    vae: models/VAE
    loras: |
         models/Lora
         models/LyCORIS
    upscale_models: |
                  models/ESRGAN
                  models/RealESRGAN
                  models/SwinIR
    embeddings: embeddings
    hypernetworks: models/hypernetworks
    controlnet: models/ControlNet   # and SparseCtrl, IP-Adapters

#comfyui:
#     base_path: path/to/comfyui/
#     checkpoints: models/checkpoints/

shared:
    base_path: "{shared}"
    # is_default: false
    is_default: true
    checkpoints: 'sd15/checkpoints'
    animatediff_models: motion
    animatediff_motion_lora: motion_lora

other_ui:
    base_path: ../other
    checkpoints: models/checkpoints
    gligen: models/gligen
    custom_nodes: path/custom_nodes
empty:
loose:
    loras: relative/loras
"""


def touch(root, *paths):
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"")


@pytest.fixture
def comfy(tmp_path):
    """A ComfyUI install whose extra_model_paths.yaml points at an A1111 install and a shared models folder."""
    a1111, shared, comfy = tmp_path / "webui", tmp_path / "shared", tmp_path / "ComfyUI"
    touch(
        a1111,
        "models/Stable-diffusion/dreamy.safetensors",
        "models/Lora/ink.safetensors",
        "models/Lora/v2_lora_ZoomIn.ckpt",
        "models/LyCORIS/loha.safetensors",
        "models/VAE/kl-f8-anime2.ckpt",
        "models/ControlNet/v3_sd15_sparsectrl_rgb.ckpt",
        "embeddings/EasyNegative.pt",
        "models/ESRGAN/4x.pth",
    )
    touch(shared, "sd15/checkpoints/toon.safetensors", "motion/v3_sd15_mm.ckpt", "motion_lora/v2_lora_PanLeft.ckpt")
    touch(comfy, "models/checkpoints/toon.safetensors", "models/loras/watercolor.safetensors", "folder_paths.py")
    (comfy / install_configs.COMFYUI_YAML).write_text(EXAMPLE.format(a1111=a1111, shared=shared))
    return comfy


def test_the_yaml_reader_reads_what_pyyaml_reads(comfy):
    text = (comfy / install_configs.COMFYUI_YAML).read_text()
    ours, theirs = install_configs._yaml_sections(text), yaml.safe_load(text)
    assert set(ours) == set(theirs)
    for name, section in theirs.items():
        expected = {k: str(v).lower() if isinstance(v, bool) else v for k, v in (section or {}).items()}
        assert ours[name] == expected, name
    quoted = "w:\n  base_path: 'C:\\Models\\It''s'\n  loras: \"D:\\\\lo\\\"ras\"  # comment\n  vae: a # b\n"
    assert install_configs._yaml_sections(quoted) == yaml.safe_load(quoted)


def test_comfyui_lists_the_folders_of_extra_model_paths_in_its_order(comfy, tmp_path, caplog):
    folders = install_configs.comfyui_folders(comfy)
    a1111, shared = tmp_path / "webui", tmp_path / "shared"
    assert folders == [
        (str(a1111 / "models/Stable-diffusion"), "base", False),
        (str(a1111 / "models/VAE"), "vae", False),
        (str(a1111 / "models/Lora"), "lora", False),
        (str(a1111 / "models/LyCORIS"), "lora", False),
        (str(a1111 / "embeddings"), "embedding", False),
        (str(a1111 / "models/ControlNet"), "controlnet", False),
        (str(shared / "sd15/checkpoints"), "base", True),
        (str(shared / "motion"), "motion_module", True),
        (str(shared / "motion_lora"), "motion_lora", True),
        (str(tmp_path / "other/models/checkpoints"), "base", False),  # a relative base_path: from the YAML's folder
        (str(comfy / "relative/loras"), "lora", False),  # no base_path: from the YAML's folder
    ]
    found = {(f.kind, f.name): f.path for f in model_layouts.scan(comfy)}
    # is_default: the shared folder comes before ComfyUI's own models/checkpoints, whose toon is hidden
    assert found[("base", "toon")] == str(shared / "sd15/checkpoints/toon.safetensors")
    assert {("base", "dreamy"), ("lora", "ink"), ("lora", "loha"), ("lora", "watercolor")} <= set(found)
    assert {("motion_lora", "zoom_in"), ("motion_lora", "pan_left"), ("motion_module", "v3")} <= set(found)
    assert {("sparsectrl", "rgb"), ("vae", "kl-f8-anime2"), ("embedding", "EasyNegative")} <= set(found)
    assert not any(f.endswith("4x.pth") for f in found.values())  # upscale_models: no model of ours
    assert model_layouts.summary(comfy) == (
        "ComfyUI install (+ 11 folders from extra_model_paths.yaml, 2 not found): 2 checkpoints, 3 LoRAs, 1 VAE, "
        "1 embedding, 1 motion module, 2 motion LoRAs, 1 SparseCtrl model"
    )
    with caplog.at_level("WARNING", logger="marionette"):
        config = ModelConfig.load(None, roots=[comfy])
    missing = [r.getMessage() for r in caplog.records if "which is not a folder" in r.getMessage()]
    assert len(missing) == 2 and all("extra_model_paths.yaml names" in m for m in missing)  # the server starts
    assert config.get("motion_module", "v3").source == str(shared / "motion/v3_sd15_mm.ckpt")
    assert config.get("lora", "ink").source == str(a1111 / "models/Lora/ink.safetensors")


def test_a_yaml_comfyui_cannot_read_changes_nothing(comfy):
    for text in ("a111: [\n", "\x00\x01", "- just\n- a list\n", ""):
        (comfy / install_configs.COMFYUI_YAML).write_text(text)
        assert install_configs.comfyui_folders(comfy) == []
        assert model_layouts.summary(comfy) == "ComfyUI install: 1 checkpoint, 1 LoRA"
    (comfy / install_configs.COMFYUI_YAML).write_bytes(b"\xff\xfe\x00")
    assert install_configs.comfyui_folders(comfy) == []


def a1111_install(tmp_path):
    root = tmp_path / "webui"
    touch(
        root,
        "webui.py",
        "models/Stable-diffusion/dreamy.safetensors",
        "models/Lora/ink.safetensors",
        "models/LyCORIS/loha.safetensors",
        "embeddings/EasyNegative.pt",
        "models/ControlNet/control_v11f1p_sd15_depth.pth",
        "extensions/sd-webui-animatediff/model/mm_sd_v15_v2.ckpt",
    )
    touch(
        tmp_path / "big disk",
        "motion/v3_sd15_mm.ckpt",
        "ckpt/dreamy.safetensors",
        "loras/pencil.safetensors",
        "vae/kl-f8-anime2.ckpt",
        "emb/bad-hands.pt",
        "cn/control_v11p_sd15_openpose.pth",
    )
    touch(tmp_path / "old-webui", "models/Stable-diffusion/legacy.ckpt", "models/Lora/ink.safetensors")
    return root


BAT = """@echo off

set PYTHON=
set GIT=
set "MODELS={disk}"
:: set COMMANDLINE_ARGS=--ckpt-dir nowhere
set COMMANDLINE_ARGS=--xformers --ckpt-dir "%MODELS%/ckpt" --lora-dir="%MODELS%/loras" --vae-dir "%MODELS%/vae"

call webui.bat
"""
SH = """#!/bin/bash
#export COMMANDLINE_ARGS=""
export COMMANDLINE_ARGS="--embeddings-dir '{disk}/emb' --controlnet-dir '{disk}/cn' --forge-ref-a1111-home ../old-webui"
"""


def test_a1111_honours_the_model_folders_of_commandline_args(tmp_path):
    root, disk = a1111_install(tmp_path), tmp_path / "big disk"
    (root / "webui-user.bat").write_text(BAT.format(disk=disk))
    assert install_configs.a1111_arguments(root)[1:] == [
        "--ckpt-dir",
        f"{disk}/ckpt",
        f"--lora-dir={disk}/loras",
        "--vae-dir",
        f"{disk}/vae",
    ]
    found = {(f.kind, f.name): f.path for f in model_layouts.scan(root)}
    assert found[("base", "dreamy")] == str(disk / "ckpt/dreamy.safetensors")  # --ckpt-dir is listed first
    assert ("lora", "pencil") in found and ("lora", "ink") not in found  # --lora-dir replaces models/Lora
    assert ("lora", "loha") in found and ("vae", "kl-f8-anime2") in found
    assert model_layouts.summary(root).startswith(
        "A1111/Forge install (+ 3 folders from COMMANDLINE_ARGS or settings): "
    )

    (root / "webui-user.sh").write_text(SH.format(disk=disk))  # the one this system runs is read first
    assert "--ckpt-dir" not in install_configs.a1111_arguments(root)
    (root / "webui-user.bat").unlink()
    found = {(f.kind, f.name): f.path for f in model_layouts.scan(root)}
    assert ("embedding", "bad-hands") in found and ("embedding", "EasyNegative") not in found
    assert found[("controlnet", "openpose")] == str(disk / "cn/control_v11p_sd15_openpose.pth")
    assert found[("controlnet", "depth")] == str(root / "models/ControlNet/control_v11f1p_sd15_depth.pth")
    # Forge's reference to another install: its folders after this one's, whose ink wins
    assert found[("base", "legacy")] == str(tmp_path / "old-webui/models/Stable-diffusion/legacy.ckpt")
    assert found[("lora", "ink")] == str(root / "models/Lora/ink.safetensors")
    config = ModelConfig.load(None, roots=[root])
    assert config.get("embedding", "bad-hands").source == str(disk / "emb/bad-hands.pt")
    assert config.get("motion_module", "v2").source.endswith("sd-webui-animatediff/model/mm_sd_v15_v2.ckpt")

    # sd-webui-animatediff's own setting (the settings page, config.json) moves its motion modules
    (root / "config.json").write_text('{"animatediff_model_path": "../big disk/motion", "sd_model_checkpoint": "x"}')
    found = {(f.kind, f.name): f.path for f in model_layouts.scan(root)}
    assert found[("motion_module", "v3")] == str(disk / "motion/v3_sd15_mm.ckpt")
    assert ("motion_module", "v2") not in found
    for unset in ('{"animatediff_model_path": ""}', "[1]", "{"):
        (root / "config.json").write_text(unset)
        assert ("motion_module", "v2") in {(f.kind, f.name) for f in model_layouts.scan(root)}

    for broken in ('export COMMANDLINE_ARGS="--ckpt-dir', "COMMANDLINE_ARGS=--a --b", ""):
        (root / "webui-user.sh").write_text(broken + "\n")
        assert install_configs.a1111_arguments(root) == []
        assert model_layouts.summary(root).startswith("A1111/Forge install: ")
