"""SD1.5 image LoRAs: kohya or diffusers files, folders and hub ids."""

from __future__ import annotations

import re

from .files import CheckpointError, classify, expect_kind, read_state_dict
from .folders import weights_in_folder
from .sources import resolve_source

_UNET_ONLY_LORA = re.compile(r"(down_blocks|mid_block|up_blocks)\.")


def image_lora_source(source, weight_name=None):
    """Something `pipe.load_lora_weights` accepts for an SD1.5 image LoRA: a hub id or a diffusers LoRA folder
    (as a string), or the state dict of a single file (kohya `lora_unet_*`/`lora_te_*` with alphas, or diffusers
    format), read safely and in the file's dtype (memory-mapped where the format allows)."""
    kind, where = resolve_source(source, weight_name)
    what = "an SD1.5 image LoRA"
    if kind == "hub":
        return where
    if kind == "dir":
        if (where / "pytorch_lora_weights.safetensors").is_file():
            return str(where)
        where = weights_in_folder(where, ("pytorch_lora_weights.safetensors",), what)
    sd = read_state_dict(where)
    found = classify(sd)
    if found in ("motion_lora", "motion_lora_diffusers"):
        raise CheckpointError(
            f"{where}: expected {what}, but this is an AnimateDiff motion LoRA; configure it as a motion_lora"
        )
    expect_kind(where, found, ("image_lora",), what + " (kohya lora_unet_*/lora_te_* or diffusers *lora* keys)")
    if all(_UNET_ONLY_LORA.match(k) for k in sd):
        # UNet keys with no component prefix (AnimateDiff's v3_sd15_adapter.ckpt: `down_blocks.0.attentions.0.
        # transformer_blocks.0.attn1.processor.to_q_lora.down.weight`): diffusers only loads keys under "unet."
        # and would silently skip every one of these.
        sd = {f"unet.{k}": v for k, v in sd.items()}
    return sd  # as stored: PEFT copies it into LoRA layers of the UNet's dtype
