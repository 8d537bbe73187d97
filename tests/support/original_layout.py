"""diffusers -> original key layouts: the inverse of what diffusers' single-file converters read, so test models
can be written exactly as the public files are."""

from __future__ import annotations

import re

_UNET_TOP = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}


def _ldm_resnet(suffix: str) -> str:
    head, _, tail = suffix.partition(".")
    head = {
        "norm1": "in_layers.0",
        "conv1": "in_layers.2",
        "norm2": "out_layers.0",
        "conv2": "out_layers.3",
        "time_emb_proj": "emb_layers.1",
        "conv_shortcut": "skip_connection",
    }.get(head, head)
    return f"{head}.{tail}"


def _ldm_unet_key(key: str, lpb: int, up_has_attn: dict[int, bool]) -> str | None:
    """One UNet2DConditionModel / ControlNetModel key in the LDM `openaimodel.UNetModel` layout (None: not UNet)."""
    for new, old in _UNET_TOP.items():
        if key.startswith(new):
            return old + key[len(new) :]
    if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + b * (lpb + 1) + j}.0.{_ldm_resnet(rest)}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + b * (lpb + 1) + j}.1.{rest}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        b, rest = int(m[1]), m[2]
        return f"input_blocks.{1 + b * (lpb + 1) + lpb}.0.op.{rest}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_ldm_resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{b * (lpb + 1) + j}.0.{_ldm_resnet(rest)}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{b * (lpb + 1) + j}.1.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        b, rest = int(m[1]), m[2]
        return f"output_blocks.{b * (lpb + 1) + lpb}.{2 if up_has_attn[b] else 1}.conv.{rest}"
    return None


def unet_to_ldm(state_dict: dict, config, prefix: str = "model.diffusion_model.") -> dict:
    lpb = config["layers_per_block"]
    up_has_attn = {i: "CrossAttn" in t for i, t in enumerate(config["up_block_types"])}
    out = {}
    for key, value in state_dict.items():
        new = _ldm_unet_key(key, lpb, up_has_attn)
        if new is None:
            raise KeyError(f"no LDM name for UNet key {key}")
        out[prefix + new] = value
    return out


def controlnet_to_ldm(state_dict: dict, config, prefix: str = "control_model.") -> dict:
    lpb = config["layers_per_block"]
    out = {}
    for key, value in state_dict.items():
        if m := re.fullmatch(r"controlnet_down_blocks\.(\d+)\.(.+)", key):
            new = f"zero_convs.{m[1]}.0.{m[2]}"
        elif key.startswith("controlnet_mid_block."):
            new = "middle_block_out.0." + key[len("controlnet_mid_block.") :]
        elif key.startswith("controlnet_cond_embedding.conv_in."):
            new = "input_hint_block.0." + key[len("controlnet_cond_embedding.conv_in.") :]
        elif key.startswith("controlnet_cond_embedding.conv_out."):
            new = "input_hint_block.14." + key[len("controlnet_cond_embedding.conv_out.") :]
        elif m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)", key):
            new = f"input_hint_block.{2 * int(m[1]) + 2}.{m[2]}"
        else:
            new = _ldm_unet_key(key, lpb, {})
        if new is None:
            raise KeyError(f"no LDM name for ControlNet key {key}")
        out[prefix + new] = value
    return out


def vae_to_ldm(state_dict: dict, config, prefix: str = "first_stage_model.") -> dict:
    n_up = len(config["up_block_types"])
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for key, value in state_dict.items():
        new = None
        if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.fullmatch(
            r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)"
            r"\.(weight|bias)",
            key,
        ):
            new = f"{m[1]}.mid.attn_1.{attn[m[2]]}.{m[3]}"
            if m[3] == "weight" and m[2] != "group_norm":
                value = value[:, :, None, None]  # LDM keeps these as 1x1 convolutions
        elif m := re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(.+)", key):
            new = f"{m[1]}.norm_out.{m[2]}"
        elif re.fullmatch(r"(encoder|decoder)\.conv_(in|out)\..+|(post_)?quant_conv\..+", key):
            new = key
        if new is None:
            raise KeyError(f"no LDM name for VAE key {key}")
        out[prefix + new] = value.contiguous()
    return out


def clip_to_ldm(state_dict: dict, max_positions: int, prefix: str = "cond_stage_model.transformer.") -> dict:
    import torch

    out = {}
    for key, value in state_dict.items():
        key = key if key.startswith("text_model.") else "text_model." + key
        out[prefix + key] = value
    # The public SD1.5 files carry the CLIP position ids buffer too.
    out.setdefault(prefix + "text_model.embeddings.position_ids", torch.arange(max_positions)[None])
    return out


_MM_BLOCK = {
    "attn1": "attention_blocks.0",
    "attn2": "attention_blocks.1",
    "norm1": "norms.0",
    "norm2": "norms.1",
    "norm3": "ff_norm",
}


def motion_to_original(state_dict: dict, prefix: str = "") -> dict:
    """Diffusers motion-module keys -> AnimateDiff's original ones (`temporal_transformer`, `attention_blocks`,
    `norms`, `ff_norm`, one `pos_encoder.pe` per attention block); other keys pass through unchanged."""
    out = {}
    for key, value in state_dict.items():
        m = re.fullmatch(r"(.*\.motion_modules\.\d+)\.(.+)", key)
        if not m:
            out[prefix + key] = value
            continue
        head, rest = m[1], m[2]
        t = re.fullmatch(r"transformer_blocks\.(\d+)\.([^.]+)\.(.+)", rest)
        if t and t[2] == "pos_embed":
            continue  # written per attention block below
        if t:
            rest = f"transformer_blocks.{t[1]}.{_MM_BLOCK.get(t[2], t[2])}.{t[3]}"
        out[f"{prefix}{head}.temporal_transformer.{rest}"] = value
    for key, value in state_dict.items():
        t = re.fullmatch(r"(.*\.motion_modules\.\d+)\.transformer_blocks\.(\d+)\.pos_embed\.pe", key)
        if t:
            for a in ("0", "1"):
                attn_key = f"{t[1]}.temporal_transformer.transformer_blocks.{t[2]}.attention_blocks.{a}"
                if any(k.startswith(prefix + attn_key + ".") for k in out):
                    out[f"{prefix}{attn_key}.pos_encoder.pe"] = value.clone()
    return out


def motion_lora_to_original(state_dict: dict) -> dict:
    """The inverse of diffusers' motion LoRA conversion: drop `unet.`, original motion-module names."""
    plain = {k.removeprefix("unet."): v for k, v in state_dict.items()}
    return motion_to_original(plain)
