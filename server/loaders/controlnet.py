"""SD1.5 ControlNets: a diffusers folder, a hub id, an original v1.1 file, or a diffusers single file."""

from __future__ import annotations

from .files import classify, expect_kind, read_state_dict
from .folders import pretrained_model
from .single_file import strict_single_file
from .sources import CONFIGS, config_folder, resolve_source


def load_controlnet(source, config=None, weight_name=None, dtype=None):
    """A diffusers ControlNetModel (in `dtype`, float32 when None; CPU) from a hub id, a diffusers folder, an
    original ControlNet v1.1 file (control_v11*_sd15_*.pth, `control_model.*` keys) or a diffusers-format single
    file."""
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    kind, where = resolve_source(source, weight_name)
    what = "a ControlNet"
    if kind in ("dir", "hub"):
        return pretrained_model(ControlNetModel, kind, where, what, dtype)
    sd = read_state_dict(where)
    found = classify(sd)
    expect_kind(
        where,
        found,
        ("controlnet_ldm", "controlnet_diffusers"),
        "an SD1.5 ControlNet (control_model.* keys, or the diffusers ControlNetModel layout)",
    )
    if found == "controlnet_ldm":
        # ControlNet 1.0 files may carry the whole SD model too; only control_model.* belongs to the ControlNet.
        if any(k.startswith("control_model.") for k in sd):
            sd = {k: v for k, v in sd.items() if k.startswith("control_model.")}
    config_dir = config_folder(config) or CONFIGS / "controlnet_sd15"
    cfg = dict(ControlNetModel.load_config(str(config_dir)))
    converted = sd if found == "controlnet_diffusers" else convert_controlnet_checkpoint(sd, cfg)
    return strict_single_file(ControlNetModel, sd, where, config_dir, converted, dtype=dtype)
