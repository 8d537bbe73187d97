"""SD1.5 base models: a diffusers pipeline folder, a hub id, or a single file in the original LDM layout."""

from __future__ import annotations

from pathlib import Path

from .files import CheckpointError, classify, expect_kind, read_state_dict
from .folders import load_pretrained
from .single_file import cast, strict_single_file
from .sources import CONFIGS, config_folder, resolve_source

# The CLIP ViT-L/14 tokenizer shipped for single files whose config folder has none (tools/make_clip_tokenizer.py).
SHIPPED_TOKENIZER = CONFIGS / "sd15" / "tokenizer"


def _load_scheduler(where, subfolder="scheduler", **kwargs):
    import diffusers

    try:
        cfg = diffusers.DDIMScheduler.load_config(str(where), subfolder=subfolder, **kwargs)
        cls = getattr(diffusers, cfg.get("_class_name", "DDIMScheduler"), diffusers.DDIMScheduler)
        return cls.from_config(cfg)
    except Exception as e:
        raise CheckpointError(f"{where}: no readable scheduler config in {subfolder}/ ({e})") from e


def _checked_tokenizer(folder, where, **kwargs):
    """A CLIP tokenizer from `folder`; current transformers quietly builds an empty one when the vocabulary files
    are missing, so insist on a real vocabulary."""
    from transformers import CLIPTokenizer

    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(folder), **kwargs)
    except Exception as e:
        raise CheckpointError(f"{where}: no readable CLIP tokenizer ({type(e).__name__}: {e})") from e
    vocab = tokenizer.get_vocab()
    if len(vocab) <= 256 or "<|endoftext|>" not in vocab:
        raise CheckpointError(f"{where}: no CLIP tokenizer vocabulary (vocab.json and merges.txt) found")
    return tokenizer


def _load_tokenizer_for_single_file(config_dir: Path):
    folder = config_dir / "tokenizer"
    if not folder.is_dir():
        folder = SHIPPED_TOKENIZER
    return _checked_tokenizer(folder, folder)


def _load_clip_from_ldm(sd: dict, config_dir: Path, path, dtype=None):
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel

    prefix = "cond_stage_model.transformer."
    te = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    if not te:
        raise CheckpointError(
            f"{path}: expected an SD1.5 checkpoint with a CLIP text encoder "
            f"(cond_stage_model.transformer.*); this one has none (SD2.x and SDXL files use "
            f"other text encoders and are not supported)"
        )
    try:
        cfg = CLIPTextConfig.from_pretrained(str(config_dir / "text_encoder"))
    except Exception as e:
        raise CheckpointError(f"{config_dir}: no readable text_encoder/config.json ({e})") from e
    with init_empty_weights():
        model = CLIPTextModel(cfg)
    expected = set(model.state_dict())
    renamed = {}
    for key, value in te.items():
        if key not in expected and key.startswith("text_model.") and key[len("text_model.") :] in expected:
            key = key[len("text_model.") :]
        elif key not in expected and "text_model." + key in expected:
            key = "text_model." + key
        if key not in expected and key.endswith("position_ids"):
            continue  # a non-persistent buffer in current transformers; the model builds its own
        renamed[key] = value
    missing, unexpected = sorted(expected - set(renamed)), sorted(set(renamed) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: CLIP text encoder does not match {config_dir / 'text_encoder'}: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    try:
        model.load_state_dict(cast(renamed, dtype), strict=True, assign=True)
    except Exception as e:
        raise CheckpointError(f"{path}: CLIP text encoder does not match {config_dir / 'text_encoder'} ({e})") from e
    return model.eval().requires_grad_(False)


def load_base(source, config=None, weight_name=None, dtype=None) -> dict:
    """An SD1.5 base model: {"unet", "vae", "text_encoder", "tokenizer", "scheduler"} in `dtype` (float32 when
    None) on the CPU.
    `source`: a hub id, a diffusers pipeline folder, or a single-file checkpoint in the original LDM layout."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    kind, where = resolve_source(source, weight_name)
    if kind in ("dir", "hub"):
        what = "an SD1.5 pipeline (unet/, vae/, text_encoder/, tokenizer/, scheduler/)"
        if kind == "dir":
            if not (where / "unet").is_dir() and not (where / "model_index.json").is_file():
                raise CheckpointError(
                    f"{where}: expected a diffusers SD1.5 pipeline folder (model_index.json, "
                    f"unet/, vae/, text_encoder/, tokenizer/, scheduler/)"
                )
        out = {
            "unet": load_pretrained(UNet2DConditionModel, where, what, dtype, subfolder="unet"),
            "vae": load_pretrained(AutoencoderKL, where, what, dtype, subfolder="vae"),
            "text_encoder": load_pretrained(CLIPTextModel, where, what, dtype, subfolder="text_encoder"),
        }
        out["tokenizer"] = _checked_tokenizer(where, f"{where} (tokenizer/)", subfolder="tokenizer")
        out["scheduler"] = _load_scheduler(where)
        return out

    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    sd = read_state_dict(where)
    expect_kind(
        where,
        classify(sd),
        ("sd_ldm",),
        "an SD1.5 checkpoint in the original LDM layout "
        "(model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.*)",
    )
    probe = sd.get("model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight")
    if probe is not None and probe.shape[-1] != 768 and config is None:
        raise CheckpointError(
            f"{where}: expected an SD1.5 checkpoint (cross-attention width 768), found width "
            f"{probe.shape[-1]} (SD2.x/SDXL are not supported); pass config= for other models"
        )
    config_dir = config_folder(config) or CONFIGS / "sd15"
    unet_sd = {k: v for k, v in sd.items() if k.startswith("model.diffusion_model.")}
    unet = strict_single_file(
        UNet2DConditionModel,
        unet_sd,
        where,
        config_dir,
        convert_ldm_unet_checkpoint(unet_sd, dict(UNet2DConditionModel.load_config(str(config_dir), subfolder="unet"))),
        subfolder="unet",
        dtype=dtype,
    )
    vae_sd = {k: v for k, v in sd.items() if k.startswith(("first_stage_model.", "vae."))}
    if not vae_sd:
        raise CheckpointError(
            f"{where}: expected an SD1.5 checkpoint with a VAE (first_stage_model.*); this one has none"
        )
    vae = strict_single_file(
        AutoencoderKL,
        vae_sd,
        where,
        config_dir,
        convert_ldm_vae_checkpoint(vae_sd, dict(AutoencoderKL.load_config(str(config_dir), subfolder="vae"))),
        subfolder="vae",
        dtype=dtype,
    )
    text_encoder = _load_clip_from_ldm(sd, config_dir, where, dtype)
    tokenizer = _load_tokenizer_for_single_file(config_dir)
    scheduler = _load_scheduler(config_dir)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}
