"""CameraCtrl checkpoints in the public `CameraCtrl.ckpt` layout, keys and shapes written out here from the
original code (hehao13/CameraCtrl: `CameraPoseEncoder` in cameractrl/models/pose_adaptor.py with the
`pose_encoder_kwargs` of configs/train_cameractrl/adv3_256_384_cameractrl_relora.yaml, and the `qkv_merge` of
`PoseAdaptorAttnProcessor` on attention block '0' of every v3 motion module), not from the server's classes, so a
wrong key or shape in the server's encoder fails its strict load.

`layout(channels, unet_channels)` gives key -> shape; `write(path, ...)` a torch checkpoint with
{"pose_encoder_state_dict", "attention_processor_state_dict"} and random weights (fixed seed), the position tables
the sinusoids the original computes. Full size: channels (320, 640, 1280, 1280) on the SD1.5 UNet's widths.
"""

from __future__ import annotations

import math
from pathlib import Path

FULL = (320, 640, 1280, 1280)
BLOCKS = 2  # nums_rb
DOWNSCALE = 8  # downscale_factor: cin = 6 · 8² = 384
POSITIONS = 16  # temporal_position_encoding_max_len
UP_MODULES, DOWN_MODULES = 3, 2  # motion modules per up / down block (v3: no mid-block module)


def encoder_layout(channels=FULL) -> dict[str, tuple]:
    out = {"encoder_conv_in.weight": (channels[0], 6 * DOWNSCALE**2, 3, 3), "encoder_conv_in.bias": (channels[0],)}
    for i, c in enumerate(channels):
        for j in range(BLOCKS):
            conv = f"encoder_down_conv_blocks.{i}.{j}."
            before = channels[i - 1] if (j == 0 and i > 0) else c
            if before != c:  # sk=True: a 1×1 in_conv only where the width changes; no skep
                out[conv + "in_conv.weight"], out[conv + "in_conv.bias"] = (c, before, 1, 1), (c,)
            out[conv + "block1.weight"], out[conv + "block1.bias"] = (c, c, 3, 3), (c,)
            out[conv + "block2.weight"], out[conv + "block2.bias"] = (c, c, 1, 1), (c,)  # ksize=1
            att = f"encoder_down_attention_blocks.{i}.{j}."
            for name in ("to_q", "to_k", "to_v"):  # attention_bias=False
                out[att + f"attention_blocks.0.{name}.weight"] = (c, c)
            out[att + "attention_blocks.0.to_out.0.weight"] = (c, c)
            out[att + "attention_blocks.0.to_out.0.bias"] = (c,)
            out[att + "attention_blocks.0.pos_encoder.pe"] = (1, POSITIONS, c)
            out[att + "norms.0.weight"], out[att + "norms.0.bias"] = (c,), (c,)
            out[att + "ff.net.0.proj.weight"], out[att + "ff.net.0.proj.bias"] = (8 * c, c), (8 * c,)  # GEGLU
            out[att + "ff.net.2.weight"], out[att + "ff.net.2.bias"] = (c, 4 * c), (c,)
            out[att + "ff_norm.weight"], out[att + "ff_norm.bias"] = (c,), (c,)
    return out


def attention_layout(unet_channels=FULL) -> dict[str, tuple]:
    out = {}
    for kind, modules, widths in (
        ("down_blocks", DOWN_MODULES, unet_channels),
        ("up_blocks", UP_MODULES, tuple(reversed(unet_channels))),
    ):
        for b, c in enumerate(widths):
            for m in range(modules):
                key = (
                    f"{kind}.{b}.motion_modules.{m}.temporal_transformer.transformer_blocks.0.attention_blocks.0"
                    f".processor.qkv_merge"
                )
                out[key + ".weight"], out[key + ".bias"] = (c, c), (c,)
    return out


def _sinusoids(shape):
    import torch

    _, n, dim = shape
    position = torch.arange(n).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    pe = torch.zeros(shape)
    pe[0, :, 0::2], pe[0, :, 1::2] = torch.sin(position * div), torch.cos(position * div)
    return pe


def state_dicts(channels=FULL, unet_channels=FULL, seed: int = 61, merge_std: float = 1.0) -> tuple[dict, dict]:
    """Random weights in the layout: LayerNorms at 1/0, the rest normal with a fan-in scale; `merge_std` for the
    qkv_merge layers (trained ones are far from their zero init)."""
    import torch

    g = torch.Generator().manual_seed(seed)

    def tensor(key, shape, std=None):
        if key.endswith(".pe"):
            return _sinusoids(shape)
        if ("norm" in key) and key.endswith(".weight"):
            return torch.ones(shape)
        if ("norm" in key) and key.endswith(".bias"):
            return torch.zeros(shape)
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
        return torch.randn(shape, generator=g) * (std if std is not None else 1.0 / math.sqrt(fan_in))

    encoder = {k: tensor(k, s) for k, s in encoder_layout(channels).items()}
    attention = {k: tensor(k, s, merge_std / math.sqrt(s[0])) for k, s in attention_layout(unet_channels).items()}
    return encoder, attention


def write(path, channels, unet_channels=None, seed: int = 61, merge_std: float = 1.0) -> Path:
    """A `CameraCtrl.ckpt`-layout file at `path` (torch.save, as published)."""
    import torch

    encoder, attention = state_dicts(channels, unet_channels or channels, seed, merge_std)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"epoch": 0, "global_step": 0, "pose_encoder_state_dict": encoder, "attention_processor_state_dict": attention},
        path,
    )
    return path


def realestate_lora(unet, seed: int = 62) -> dict:
    """An image LoRA in the layout of CameraCtrl's `RealEstate10K_LoRA.ckpt` for `unet`'s spatial attentions:
    {"lora_state_dict": {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight":
    (rank, in), "….up.weight": (out, rank), … for to_q, to_k, to_v, to_out}} with rank = width // 2 (its
    `lora_rank: 2` means hidden_size // 2), keys without a component prefix, as its training script saves them."""
    import torch
    from diffusers.models.attention_processor import Attention

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, module in unet.named_modules():
        if not isinstance(module, Attention) or "motion_modules" in name or not name.endswith(("attn1", "attn2")):
            continue
        width = module.to_q.out_features
        rank = width // 2
        for proj, layer in (
            ("to_q", module.to_q),
            ("to_k", module.to_k),
            ("to_v", module.to_v),
            ("to_out", module.to_out[0]),
        ):
            key = f"{name}.processor.{proj}_lora"
            sd[f"{key}.down.weight"] = torch.randn((rank, layer.in_features), generator=g) / rank
            sd[f"{key}.up.weight"] = torch.randn((layer.out_features, rank), generator=g) * 0.1
    return {"lora_state_dict": sd}
