"""SparseCtrl models: a diffusers folder, a hub id, or an original SparseCtrl file (RGB or scribble)."""

from __future__ import annotations

from .files import CheckpointError, classify, expect_kind, read_state_dict
from .folders import pretrained_model
from .single_file import strict_single_file
from .sources import CONFIGS, config_folder, resolve_source


def load_sparsectrl(source, config=None, weight_name=None, dtype=None):
    """A diffusers SparseControlNetModel (in `dtype`, float32 when None; CPU) from a hub id, a diffusers folder, or
    an original SparseCtrl file (v3_sd15_sparsectrl_rgb.ckpt: `controlnet_cond_embedding.weight`;
    v3_sd15_sparsectrl_scribble.ckpt: `controlnet_cond_embedding.conv_in.weight`)."""
    from diffusers import SparseControlNetModel
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    kind, where = resolve_source(source, weight_name)
    what = "a SparseCtrl model"
    if kind in ("dir", "hub"):
        return pretrained_model(SparseControlNetModel, kind, where, what, dtype)
    sd = read_state_dict(where)
    expect_kind(
        where, classify(sd), ("sparsectrl",), "a SparseCtrl model (controlnet_cond_embedding.* + motion modules)"
    )
    if "controlnet_cond_embedding.weight" in sd:
        variant = "rgb"
    elif "controlnet_cond_embedding.conv_in.weight" in sd:
        variant = "scribble"
    else:
        raise CheckpointError(
            f"{where}: expected a SparseCtrl RGB (controlnet_cond_embedding.weight) or scribble "
            f"(controlnet_cond_embedding.conv_in.weight) model; it has neither"
        )
    config_dir = config_folder(config) or CONFIGS / f"sparsectrl_{variant}"
    converted = convert_animatediff_checkpoint_to_diffusers(sd)
    return strict_single_file(SparseControlNetModel, sd, where, config_dir, converted, dtype=dtype)
