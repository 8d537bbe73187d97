"""The AnimateDiff files artists keep in ComfyUI's animatediff_models and A1111's sd-webui-animatediff model folder
(AnimateDiff-Lightning for ComfyUI and diffusers, AnimateLCM, conrevo's fp16 copies), each in its own key layout
(tests/support/tiny_motion_files.py): served under the default config's name where it has one, and loaded by the
server's loader to the very weights they were written from. The v3 domain adapter is an image LoRA in both installs
and loads onto the UNet's attention projections."""

from __future__ import annotations

import shutil

import pytest
import torch
from diffusers import MotionAdapter, StableDiffusionPipeline

from server import model_layouts
from server.loaders import ModelConfig, image_lora_source, load_motion_adapter, motion_adapter_info
from server.loaders.family import family_of
from tests.support import tiny_motion_files as files

DEFAULT_NAMES = {  # the default config's name of each file, None: found under its stem
    "animatediff_lightning_4step_comfyui.safetensors": "lightning-4step",
    "animatediff_lightning_4step_diffusers.safetensors": "lightning-4step",
    "animatediff_lightning_8step_comfyui.safetensors": None,
    "AnimateLCM_sd15_t2v.ckpt": "animatelcm",
    "mm_sd15_AnimateLCM.safetensors": "animatelcm",
    "mm_sd15_v1.safetensors": "v1",
    "mm_sd15_v2.safetensors": "v2",
    "mm_sd15_v3.safetensors": "v3",
}
VERSIONS = {"motion_v1": ("v1", 24), "motion_v2": ("v2", 32), "motion_v3": ("v3", 32)}


@pytest.fixture(scope="module")
def written(tiny_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("motion-files")
    for name in files.MOTION_FILES:
        files.motion_file(tiny_models, name, out / name)
    for name in files.ADAPTER_FILES:
        files.adapter_file(tiny_models, name, out / name)
    return out


def install(tmp_path, layout: str, folder: str, filename: str, written):
    """A one-file ComfyUI or A1111 install: (its root, the file's path in it)."""
    root = tmp_path / layout
    marker = "models/checkpoints" if layout == "comfyui" else "models/Stable-diffusion"
    (root / marker).mkdir(parents=True, exist_ok=True)
    path = root / folder / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(written / filename, path)
    return root, path


@pytest.mark.parametrize("filename", list(DEFAULT_NAMES))
def test_each_motion_file_takes_its_default_name_and_loads_its_weights(filename, written, tiny_models, tmp_path):
    folder, layout, dtype = files.MOTION_FILES[filename]
    root, path = install(tmp_path, "comfyui", "models/animatediff_models", filename, written)
    a1111, a1111_path = install(tmp_path, "a1111", "extensions/sd-webui-animatediff/model", filename, written)
    name = DEFAULT_NAMES[filename] or path.stem
    for where, file in ((root, path), (a1111, a1111_path)):
        entry = ModelConfig.load(None, roots=[where]).get("motion_module", name)
        assert (entry.source, entry.config, entry.weight_name) == (str(file), None, None), where
        assert [(f.kind, f.name) for f in model_layouts.scan(where)] == [("motion_module", name)]

    version, frames = VERSIONS[folder]
    assert motion_adapter_info(str(path)) == {"version": version, "max_frames": frames}
    assert family_of(str(path)) == "sd15"  # the spec checks' family test lets it through
    got = load_motion_adapter(str(path), tiny_models / folder).state_dict()  # the tiny config; the real ones ship
    reference = MotionAdapter.from_pretrained(tiny_models / folder).state_dict()
    assert set(got) == set(reference)
    tolerance = 1e-3 if dtype == "float16" else 0
    for key, value in reference.items():
        assert torch.allclose(got[key], value, atol=tolerance, rtol=tolerance), key


def test_the_v3_domain_adapter_is_an_image_lora_in_both_installs_and_loads(written, tiny_models, tmp_path):
    targets = files.adapter_targets(tiny_models)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_models / "sd15", safety_checker=None)
    for layout, folder in (("a1111", "models/Lora"), ("comfyui", "models/loras")):
        for filename in files.ADAPTER_FILES:
            root, path = install(tmp_path / filename, layout, folder, filename, written)
            assert [(f.kind, f.name) for f in model_layouts.scan(root)] == [("lora", path.stem)], (layout, filename)
            assert family_of(str(path)) == "sd15"
            entry = ModelConfig.load(None, roots=[root]).get("lora", path.stem)
            adapter = f"{layout}_{path.stem}"
            pipe.load_lora_weights(image_lora_source(entry.source), adapter_name=adapter)
            wrapped = {n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and adapter in m.lora_A}
            assert wrapped == set(targets), (layout, filename)
