"""AnimateDiff motion modules (v1/v2/v3, original or diffusers layout) and motion LoRAs."""

from __future__ import annotations

from .files import CheckpointError, classify, expect_kind, keys_and_shapes, read_state_dict
from .folders import check_folder_class, pretrained_model, read_json, weights_in_folder
from .single_file import strict_single_file
from .sources import CONFIGS, config_folder, hub_download, resolve_source

MOTION_VERSIONS = ("v1", "v2", "v3")


def _motion_version_from_shapes(shapes: dict[str, tuple]) -> tuple[str, int | None]:
    """("v1"|"v2"|"v3"|"unknown", position-encoding length or None) from key names and shapes."""
    pe = next((s for k, s in shapes.items() if k.endswith(("pos_encoder.pe", "pos_embed.pe")) and len(s) >= 2), None)
    length = int(pe[1]) if pe else None
    if any(k.startswith("mid_block.motion_modules.") for k in shapes):
        return "v2", length
    if length == 24:
        return "v1", length
    if length is not None:
        return "v3", length
    return "unknown", None


def _version_from_config(cfg: dict) -> str:
    if cfg.get("use_motion_mid_block", True):
        return "v2"
    return "v1" if cfg.get("motion_max_seq_length", 32) == 24 else "v3"


def _is_sdxl_motion(shapes) -> bool:
    return any(".motion_modules." in k for k in shapes) and not any(k.startswith("down_blocks.3.") for k in shapes)


def motion_adapter_info(source, config=None, weight_name=None) -> dict:
    """{"version": "v1"|"v2"|"v3"|"unknown", "max_frames": int} without building the model: from config.json for
    folders and hub ids, from the safetensors header for .safetensors, from the loaded tensors for .ckpt files."""
    kind, where = resolve_source(source, weight_name)
    if kind in ("dir", "hub"):
        if kind == "dir":
            check_folder_class(where, ("MotionAdapter",), "an AnimateDiff motion adapter")
            cfg = read_json(where / "config.json")
        else:
            cfg = read_json(hub_download(where, "config.json", source))
            if cfg.get("_class_name", "MotionAdapter") != "MotionAdapter":
                raise CheckpointError(
                    f"{where}: expected an AnimateDiff motion adapter, hub config is for {cfg.get('_class_name')}"
                )
        return {"version": _version_from_config(cfg), "max_frames": int(cfg.get("motion_max_seq_length", 32))}
    shapes = keys_and_shapes(where)
    expect_kind(where, classify(shapes), ("motion_module", "motion_module_diffusers"), "an AnimateDiff motion module")
    version, length = _motion_version_from_shapes(shapes)
    if length is None:
        config_dir = config_folder(config) if config is not None else None
        if config_dir is not None:
            cfg = read_json(config_dir / "config.json")
            length = int(cfg.get("motion_max_seq_length", 32))
            if version == "unknown":
                version = _version_from_config(cfg)
        else:
            length = 32
    return {"version": version, "max_frames": length}


def load_motion_adapter(source, config=None, weight_name=None, dtype=None):
    """A diffusers MotionAdapter (in `dtype`, float32 when None; CPU) from a hub id, a diffusers folder, an
    original AnimateDiff motion module (mm_sd_v15.ckpt v1, mm_sd_v15_v2.ckpt v2, v3_sd15_mm.ckpt v3) or a
    diffusers-format single file (e.g. AnimateDiff-Lightning's *_diffusers.safetensors). The v1/v2/v3 config is
    chosen from the keys when `config` is None."""
    from diffusers import MotionAdapter
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    kind, where = resolve_source(source, weight_name)
    what = "an AnimateDiff motion adapter"
    if kind in ("dir", "hub"):
        return pretrained_model(MotionAdapter, kind, where, what, dtype)
    sd = read_state_dict(where)
    expect_kind(where, classify(sd), ("motion_module", "motion_module_diffusers"), "an AnimateDiff motion module")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    config_dir = config_folder(config)
    if config_dir is None:
        if _is_sdxl_motion(shapes):
            raise CheckpointError(
                f"{where}: looks like an SDXL motion module (3 down blocks); only SD1.5 motion "
                f"modules have shipped configs; pass config= a diffusers MotionAdapter folder"
            )
        version, _ = _motion_version_from_shapes(shapes)
        config_dir = CONFIGS / f"motion_adapter_{version if version in MOTION_VERSIONS else 'v3'}"
    converted = convert_animatediff_checkpoint_to_diffusers(sd)
    return strict_single_file(MotionAdapter, sd, where, config_dir, converted, dtype=dtype)


def convert_motion_lora(state_dict: dict) -> dict:
    """Original AnimateDiff motion LoRA keys -> the diffusers format: the motion-module part of each key converted
    exactly as diffusers converts motion modules, `processor.to_q_lora.down.weight` kept, `unet.` prefixed."""
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    converted = convert_animatediff_checkpoint_to_diffusers(state_dict)
    return {f"unet.{k}": v for k, v in converted.items()}


def motion_lora_state_dict(source, weight_name=None) -> dict:
    """The diffusers-format state dict of a motion LoRA (what `pipe.load_lora_weights(sd, adapter_name=...)`
    takes), in the file's dtype: from a hub id or folder (diffusion_pytorch_model.safetensors), a diffusers-format
    file, or an original v2_lora_*.ckpt."""
    kind, where = resolve_source(source, weight_name)
    what = "an AnimateDiff motion LoRA"
    if kind == "hub":
        where = hub_download(where, "diffusion_pytorch_model.safetensors", source)
    elif kind == "dir":
        where = weights_in_folder(
            where, ("diffusion_pytorch_model.safetensors", "pytorch_lora_weights.safetensors"), what
        )
    sd = read_state_dict(where)
    found = classify(sd)
    expect_kind(where, found, ("motion_lora", "motion_lora_diffusers"), what + " (…motion_modules…_lora… keys)")
    if found == "motion_lora":
        sd = convert_motion_lora(sd)
    elif not all(k.startswith("unet.") for k in sd):
        sd = {k if k.startswith("unet.") else f"unet.{k}": v for k, v in sd.items()}
    return sd  # as stored: PEFT copies it into LoRA layers of the UNet's dtype
