"""Separate SD1.5 VAEs (A1111's "SD VAE", ComfyUI's "Load VAE"): a single file in the original LDM layout, a
diffusers AutoencoderKL folder, or a hub id.

Single files: bare keys as stabilityai's vae-ft-mse-840000-ema-pruned (`encoder.down.0.block.0.norm1.weight`,
`decoder.up.0.…`, `quant_conv.weight`, …), the same under `first_stage_model.` or `vae.` (a VAE cut out of a
checkpoint), `.ckpt`/`.pt` with a "state_dict" wrapper, or one file in the diffusers key layout. Training-only
weights that real files carry (the discriminator and LPIPS under `loss.`, `model_ema.` counters) are ignored;
every weight the model needs must be there, in its shape.
"""

from __future__ import annotations

from pathlib import Path

from .files import CheckpointError, classify, describe_kind, read_state_dict
from .folders import check_folder_class, load_pretrained, read_json
from .single_file import strict_single_file
from .sources import CONFIGS, config_folder, resolve_source

LDM_PREFIXES = ("first_stage_model.", "vae.")
TRAINING_ONLY = ("loss.", "model_ema.")
SD15_LATENT_CHANNELS = 4
SDXL_SCALING = 0.13025
WHAT = "an SD1.5 VAE (AutoencoderKL)"
PICK = "pick an SD1.5 VAE such as vae-ft-mse-840000 (stabilityai/sd-vae-ft-mse)"


def vae_weights(sd: dict, path) -> tuple[dict, str]:
    """The VAE's weights of a single file under bare names, training-only weights dropped, and its layout
    ("ldm" or "diffusers")."""
    if any(k.startswith("model.diffusion_model.") for k in sd):
        raise CheckpointError(
            f"{path}: expected {WHAT} file (encoder.*, decoder.*, quant_conv.*), but it is a whole Stable Diffusion "
            f"checkpoint; name it as a base model, or pick a VAE file such as vae-ft-mse-840000-ema-pruned"
        )
    for prefix in LDM_PREFIXES:
        if any(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
            break
    sd = {k: v for k, v in sd.items() if not k.startswith(TRAINING_ONLY)}
    if not any(k.startswith(("encoder.", "decoder.")) for k in sd):
        raise CheckpointError(
            f"{path}: expected {WHAT} file (encoder.*, decoder.*, quant_conv.*), but the file holds "
            f"{describe_kind(classify(sd))}"
        )
    diffusers = any(k.startswith(("encoder.down_blocks.", "decoder.up_blocks.")) for k in sd)
    return sd, "diffusers" if diffusers else "ldm"


def _latent_channels(sd: dict) -> int | None:
    """From the encoder's output (mean and log-variance: twice the latent channels)."""
    conv_out = sd.get("encoder.conv_out.weight")
    return None if conv_out is None or conv_out.ndim != 4 else conv_out.shape[0] // 2


def latents_misfit(channels: int, needed: int) -> str:
    family = " (an SD3 or Flux VAE)" if channels == 16 else ""
    return f"a VAE with {channels} latent channels{family} does not fit this SD1.5 checkpoint ({needed}); {PICK}"


def _config_at(config, path) -> tuple[Path, str | None, dict]:
    """(folder, subfolder, AutoencoderKL config) for a single file: `config` (a VAE folder with config.json, or a
    pipeline folder with vae/), else SD1.5's shipped in server/configs/sd15/vae."""
    from diffusers import AutoencoderKL

    folder = config_folder(config) or CONFIGS / "sd15"
    subfolder = None if (folder / "config.json").is_file() else "vae"
    try:
        return folder, subfolder, dict(AutoencoderKL.load_config(str(folder), subfolder=subfolder))
    except Exception as e:
        where = folder / (subfolder or "")
        raise CheckpointError(f"{path}: no readable AutoencoderKL config at {where} ({type(e).__name__}: {e})") from e


def _from_file(path: Path, config, dtype):
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    sd, layout = vae_weights(read_state_dict(path), path)
    folder, subfolder, cfg = _config_at(config, path)
    latent = _latent_channels(sd)
    if latent is not None and latent != cfg["latent_channels"]:
        raise CheckpointError(f"{path}: {latents_misfit(latent, cfg['latent_channels'])}")
    ldm = layout == "ldm"
    converted = convert_ldm_vae_checkpoint(sd, cfg) if ldm else sd
    unplaced = _unplaced(sd, cfg) if ldm else ()  # the file's own names of what the conversion found no place for
    return strict_single_file(AutoencoderKL, sd, path, folder, converted, subfolder, dtype, WHAT, unplaced)


def _unplaced(sd: dict, cfg: dict) -> list[str]:
    """The file's LDM names that diffusers' conversion leaves out (it drops what it has no place for silently):
    converted once more on one-number tags that say which name each converted weight came from."""
    import torch
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    names = list(sd)
    tagged = convert_ldm_vae_checkpoint({k: torch.tensor([i]) for i, k in enumerate(names)}, cfg)
    used = {int(t[0]) for t in tagged.values()}
    return sorted(n for i, n in enumerate(names) if i not in used)


def load_vae(source, config=None, weight_name=None, dtype=None):
    """An SD1.5 VAE (AutoencoderKL) in `dtype` (float32 when None) on the CPU, built on the meta device and filled
    tensor by tensor. `source`: a single file, a diffusers AutoencoderKL folder (or a pipeline folder with vae/), or
    a hub id."""
    from diffusers import AutoencoderKL

    kind, where = resolve_source(source, weight_name)
    if kind == "file":
        model = _from_file(where, config, dtype)
    else:
        subfolder = {}
        if kind == "dir" and not (where / "config.json").is_file() and (where / "vae").is_dir():
            subfolder = {"subfolder": "vae"}
        if kind == "dir":
            check_folder_class(where / subfolder.get("subfolder", ""), ("AutoencoderKL",), WHAT)
        model = load_pretrained(AutoencoderKL, where, WHAT, dtype, **subfolder)
        if model.config.latent_channels != SD15_LATENT_CHANNELS:
            raise CheckpointError(f"{where}: {latents_misfit(model.config.latent_channels, SD15_LATENT_CHANNELS)}")
    return model.eval().requires_grad_(False)


def vae_config(source, config=None, weight_name=None) -> dict:
    """The AutoencoderKL config a VAE source loads with, from config files alone (no weights are read): a single
    file's `config` (or SD1.5's shipped one), a VAE folder's config.json, or a pipeline's vae/config.json. Works
    for a base model's source too: its own VAE's config. Keys the file leaves out get AutoencoderKL's defaults."""
    import inspect

    from diffusers import AutoencoderKL

    kind, where = resolve_source(source, weight_name)
    if kind == "file":
        _, _, cfg = _config_at(config, where)
    else:
        folder = where if kind == "dir" else config_folder(where)
        folder = folder if (folder / "config.json").is_file() else folder / "vae"
        cfg = read_json(folder / "config.json")
    params = inspect.signature(AutoencoderKL.__init__).parameters.values()
    return {**{p.name: p.default for p in params if p.default is not inspect.Parameter.empty}, **cfg}


def misfit(vae: dict, base: dict) -> str | None:
    """Why a VAE (its config) cannot stand in for a base model's own (config `base`), in an artist's words; None
    when it fits: the same latent space (channels, downscaling, scaling factor)."""
    if vae["latent_channels"] != base["latent_channels"]:
        return latents_misfit(vae["latent_channels"], base["latent_channels"])
    shrink, needed = (2 ** (len(c["block_out_channels"]) - 1) for c in (vae, base))
    if shrink != needed:
        return f"a VAE that shrinks images {shrink}x does not fit this SD1.5 checkpoint ({needed}x); {PICK}"
    scaling, wanted = vae["scaling_factor"], base["scaling_factor"]
    if abs(scaling - wanted) > 1e-6:
        what = "an SDXL VAE" if abs(scaling - SDXL_SCALING) < 1e-6 else "a VAE"
        return f"{what} (scaling {scaling:g}) does not fit this SD1.5 checkpoint ({wanted:g}); {PICK}"
    return None


def check_fits(vae, base_vae, source) -> None:
    """A chosen VAE (a loaded model) can stand in for the base's own: the same latent space."""
    problem = misfit(dict(vae.config), dict(base_vae.config))
    if problem:
        raise CheckpointError(f"{source}: {problem}")
