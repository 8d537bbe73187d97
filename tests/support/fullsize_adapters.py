"""Full-size CameraCtrl, IP-Adapter and CLIP image encoder files with placeholder weights (tests/fullsize.py's
`placeholder`), in the public layouts, for the loading benchmark (bench/bench_load.py).

==============================================  ==================================================================
file                                            layout
==============================================  ==================================================================
``CameraCtrl.ckpt``                             hehao13/CameraCtrl: {"epoch", "global_step",
                                                "pose_encoder_state_dict", "attention_processor_state_dict"}
                                                (tests/support/tiny_cameractrl.py's full-size layout, 218.3 M
                                                parameters), torch.save, float32 as a training run saves it
``ip-adapter-plus_sd15.safetensors``            h94/IP-Adapter plus: `image_proj.*` (the Resampler) and
                                                `ip_adapter.*` flat (tests/support/tiny_ip_adapter.py's
                                                full-size layout, 49.1 M parameters), float16
``image_encoder/``                              h94/IP-Adapter `models/image_encoder`: config.json (ViT-H/14,
                                                server/configs/clip_vision_vit_h14) + model.safetensors in the
                                                transformers layout (632 M parameters), float32 as published
==============================================  ==================================================================
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from tests.fullsize import CONFIGS, placeholder
from tests.support import tiny_cameractrl, tiny_ip_adapter

CAMERACTRL_FILE = "CameraCtrl.ckpt"
IP_ADAPTER_FILE = "ip-adapter-plus_sd15.safetensors"
IMAGE_ENCODER_FOLDER = "image_encoder"


def write_cameractrl(path: Path, dtype=torch.float32) -> int:
    sections = {
        "pose_encoder_state_dict": tiny_cameractrl.encoder_layout(),
        "attention_processor_state_dict": tiny_cameractrl.attention_layout(),
    }
    data = {"epoch": 0, "global_step": 0}
    for name, layout in sections.items():
        data[name] = {k: placeholder(f"{name}.{k}", shape, dtype) for k, shape in layout.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return path.stat().st_size


def write_ip_adapter_plus(path: Path, dtype=torch.float16) -> int:
    from safetensors.torch import save_file

    layout = tiny_ip_adapter.plus_layout()
    flat = {
        f"{s}.{k}": placeholder(f"{s}.{k}", shape, dtype) for s, shapes in layout.items() for k, shape in shapes.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(flat, str(path))
    return path.stat().st_size


def write_image_encoder(folder: Path, dtype=torch.float32) -> int:
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig.from_dict(json.loads((CONFIGS / "clip_vision_vit_h14" / "config.json").read_text()))
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config)
    state = {k: placeholder(k, v.shape, dtype) for k, v in model.state_dict().items() if v.is_floating_point()}
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIGS / "clip_vision_vit_h14" / "config.json", folder / "config.json")
    save_file(state, str(folder / "model.safetensors"))
    return (folder / "model.safetensors").stat().st_size


def write_all(root: Path) -> dict[str, Path]:
    """The three under `root` (kept when already there); returns {"cameractrl", "ip_adapter", "image_encoder"}."""
    paths = {
        "cameractrl": root / CAMERACTRL_FILE,
        "ip_adapter": root / IP_ADAPTER_FILE,
        "image_encoder": root / IMAGE_ENCODER_FOLDER,
    }
    if not paths["cameractrl"].exists():
        write_cameractrl(paths["cameractrl"])
    if not paths["ip_adapter"].exists():
        write_ip_adapter_plus(paths["ip_adapter"])
    if not (paths["image_encoder"] / "model.safetensors").exists():
        write_image_encoder(paths["image_encoder"])
    return paths
