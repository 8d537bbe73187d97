"""The AnimateDiff files ComfyUI and A1111 users keep in their motion-module and LoRA folders, written from the tiny
models (tests/support/tiny_models.py) in each file's own key layout, dtype and format:

=================================================  =============================================================
file                                               layout
=================================================  =============================================================
``animatediff_lightning_4step_comfyui``            AnimateDiff-Lightning for ComfyUI: the original keys
``.safetensors`` (and ``_8step_``)                 (``temporal_transformer``, ``pos_encoder.pe``; v2's mid block), fp16
``animatediff_lightning_4step_diffusers``          MotionAdapter keys (``pos_embed.pe``), fp16
``.safetensors``
``AnimateLCM_sd15_t2v.ckpt``                       AnimateLCM: original keys with the mid block and no position
                                                   encodings (sd-webui-animatediff tells AnimateLCM by exactly
                                                   that), fp32, torch.save
``mm_sd15_AnimateLCM.safetensors``                 conrevo/AnimateDiff-A1111's fp16 copy of it
``mm_sd15_v1/_v2/_v3.safetensors``                 conrevo's fp16 copies of mm_sd_v15 / mm_sd_v15_v2 / v3_sd15_mm
``v3_sd15_adapter.ckpt``                           the v3 domain adapter: an image LoRA on the spatial attention
                                                   projections, unprefixed ``processor.to_q_lora.down.weight``
                                                   keys, fp32, wrapped in {"state_dict": ...}
``mm_sd15_v3_adapter.safetensors``                 the same keys in fp16 (conrevo's copy, in this layout: its key
                                                   names are not verified here)
=================================================  =============================================================
"""

from __future__ import annotations

import re
from pathlib import Path

from .original_layout import motion_to_original

# file -> (the tiny motion folder it comes from, what it holds: "original", "diffusers" or "no_pe", dtype)
MOTION_FILES = {
    "animatediff_lightning_4step_comfyui.safetensors": ("motion_v2", "original", "float16"),
    "animatediff_lightning_8step_comfyui.safetensors": ("motion_v2", "original", "float16"),
    "animatediff_lightning_4step_diffusers.safetensors": ("motion_v2", "diffusers", "float16"),
    "AnimateLCM_sd15_t2v.ckpt": ("motion_v2", "no_pe", "float32"),
    "mm_sd15_AnimateLCM.safetensors": ("motion_v2", "no_pe", "float16"),
    "mm_sd15_v1.safetensors": ("motion_v1", "original", "float16"),
    "mm_sd15_v2.safetensors": ("motion_v2", "original", "float16"),
    "mm_sd15_v3.safetensors": ("motion_v3", "original", "float16"),
}
ADAPTER_FILES = {"v3_sd15_adapter.ckpt": "float32", "mm_sd15_v3_adapter.safetensors": "float16"}
ADAPTER_RANK = 4
_ATTENTION = re.compile(
    r"(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+\.transformer_blocks\.\d+\.attn[12]"
)


def _save(state: dict, path: Path, dtype: str, wrap: bool = False) -> None:
    import torch

    state = {k: v.to(getattr(torch, dtype)).contiguous() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state} if wrap else state, str(path))


def motion_file(tiny: Path, filename: str, path: Path) -> None:
    from diffusers import MotionAdapter

    folder, layout, dtype = MOTION_FILES[filename]
    state = MotionAdapter.from_pretrained(tiny / folder).state_dict()
    if layout != "diffusers":
        state = motion_to_original(state)
    if layout == "no_pe":
        state = {k: v for k, v in state.items() if not k.endswith("pos_encoder.pe")}
    _save(state, path, dtype)


def adapter_targets(tiny: Path) -> dict[str, tuple[int, int]]:
    """The tiny UNet's spatial attention projections: module name -> (in, out) features."""
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny / "sd15" / "unet")
    return {
        name: (m.in_features, m.out_features)
        for name, m in unet.named_modules()
        if isinstance(m, torch.nn.Linear) and re.fullmatch(_ATTENTION.pattern + r"\.(to_q|to_k|to_v|to_out\.0)", name)
    }


def adapter_file(tiny: Path, filename: str, path: Path) -> None:
    import torch

    gen = torch.Generator().manual_seed(7)
    state = {}
    for name, (fan_in, fan_out) in adapter_targets(tiny).items():
        key = re.sub(r"\.(to_q|to_k|to_v|to_out)(\.0)?$", r".processor.\1_lora", name)
        state[f"{key}.down.weight"] = torch.randn(ADAPTER_RANK, fan_in, generator=gen) * 0.01
        state[f"{key}.up.weight"] = torch.randn(fan_out, ADAPTER_RANK, generator=gen) * 0.01
    dtype = ADAPTER_FILES[filename]
    _save(state, path, dtype, wrap=path.suffix == ".ckpt")
