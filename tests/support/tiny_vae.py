"""A separate tiny VAE in the public layouts, the same architecture as the tiny base's own and other weights:

- ``vae/tiny-ft-mse.safetensors``: bare LDM keys, as stabilityai's vae-ft-mse-840000-ema-pruned.safetensors;
- ``vae/tiny-ft-mse.ckpt``: the same under a "state_dict" wrapper with the training-only weights real files carry
  (the discriminator and LPIPS under ``loss.``, ``model_ema.`` counters) and a step counter beside it;
- ``vae/tiny-ft-mse-extracted.pt``: the same under ``first_stage_model.`` (a VAE cut out of a checkpoint);
- ``vae_diffusers/``: the same weights as a diffusers AutoencoderKL folder.

Their entries in models.toml take the tiny base's VAE config (``config = "sd15"``).
"""

from __future__ import annotations

from pathlib import Path

from .original_layout import vae_to_ldm

SEED = 61
NAMES = {  # models.toml name -> file under the root
    "tiny-ft": "vae/tiny-ft-mse.safetensors",
    "tiny-ft-ckpt": "vae/tiny-ft-mse.ckpt",
    "tiny-ft-extracted": "vae/tiny-ft-mse-extracted.pt",
    "tiny-ft-diffusers": "vae_diffusers",
}


def tiny_separate_vae(base_vae):
    """Fresh random weights (fixed seed) in the base VAE's architecture."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(SEED)
    return AutoencoderKL.from_config(base_vae.config).eval()


def training_only_weights() -> dict:
    """A few of the weights a VAE training checkpoint keeps beside the model (taming's LPIPSWithDiscriminator)."""
    import torch

    gen = torch.Generator().manual_seed(SEED)
    return {
        "loss.logvar": torch.zeros(()),
        "loss.discriminator.main.0.weight": torch.randn(8, 3, 4, 4, generator=gen),
        "loss.discriminator.main.0.bias": torch.randn(8, generator=gen),
        "loss.perceptual_loss.lin0.model.1.weight": torch.randn(1, 8, 1, 1, generator=gen),
        "model_ema.decay": torch.tensor(0.9999),
        "model_ema.num_updates": torch.tensor(840000, dtype=torch.int32),
    }


def build(root: Path, base_vae) -> None:
    import torch
    from safetensors.torch import save_file

    vae = tiny_separate_vae(base_vae)
    bare = vae_to_ldm(vae.state_dict(), vae.config, prefix="")
    (root / "vae").mkdir(parents=True, exist_ok=True)
    save_file(bare, root / NAMES["tiny-ft"])
    training = {"state_dict": {**bare, **training_only_weights()}, "global_step": 840000}
    torch.save(training, root / NAMES["tiny-ft-ckpt"])
    extracted = {"state_dict": {f"first_stage_model.{k}": v for k, v in bare.items()}}
    torch.save(extracted, root / NAMES["tiny-ft-extracted"])
    vae.save_pretrained(root / NAMES["tiny-ft-diffusers"])


def toml_lines() -> list[str]:
    lines = []
    for name, source in NAMES.items():
        lines += [f"[vae.{name}]", f'source = "{source}"']
        if not source.endswith("diffusers"):
            lines.append('config = "sd15"')
        lines.append("")
    return lines
