"""Regenerate the diffusers config folders shipped for offline single-file loads of the public models.

    python -m tools.make_configs

Each config comes from diffusers'/transformers' own classes built with the published hyper-parameters on the meta
device (no weights are created or written; only JSON lands in git):

- sd15/                 Stable Diffusion 1.5 (stable-diffusion-v1-5/stable-diffusion-v1-5): model_index.json,
                        unet/, vae/, text_encoder/ (CLIP ViT-L/14 text), scheduler/ (PNDM, as published). Its
                        tokenizer/ comes from openai/CLIP's BPE file (tools/make_clip_tokenizer.py) and is kept.
- motion_adapter_v1/    mm_sd_v15.ckpt        (guoyww/animatediff-motion-adapter-v1-5): no mid block, 24 positions
- motion_adapter_v2/    mm_sd_v15_v2.ckpt     (guoyww/animatediff-motion-adapter-v1-5-2): mid block, 32 positions
- motion_adapter_v3/    v3_sd15_mm.ckpt       (guoyww/animatediff-motion-adapter-v1-5-3): no mid block, 32
- sparsectrl_rgb/       v3_sd15_sparsectrl_rgb.ckpt (guoyww/animatediff-sparsectrl-rgb): VAE latents + mask in,
                        simplified (one convolution) condition embedding
- sparsectrl_scribble/  v3_sd15_sparsectrl_scribble.ckpt (guoyww/animatediff-sparsectrl-scribble): RGB + mask in
- controlnet_sd15/      ControlNet v1.1 for SD1.5 (lllyasviel/control_v11*_sd15_*)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "server" / "configs"

SD15_DOWN = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
SD15_UP = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
SD15_CHANNELS = (320, 640, 1280, 1280)
# The SD1.5 UNet's encoder, which ControlNet and SparseCtrl copy (their weights start as the UNet's).
SD15_ENCODER = {
    "block_out_channels": SD15_CHANNELS,
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}


def _meta(cls, **kwargs):
    import torch

    with torch.device("meta"):
        return cls(**kwargs)


def _write_config(obj, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    obj.save_config(folder)


def make(root: Path = HERE) -> None:
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        MotionAdapter,
        PNDMScheduler,
        SparseControlNetModel,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig

    for name in (
        "sd15",
        "motion_adapter_v1",
        "motion_adapter_v2",
        "motion_adapter_v3",
        "sparsectrl_rgb",
        "sparsectrl_scribble",
        "controlnet_sd15",
    ):
        for part in (root / name).glob("*"):
            if part == root / "sd15" / "tokenizer":
                continue
            if part.is_dir():
                shutil.rmtree(part)
            else:
                part.unlink()

    sd15 = root / "sd15"
    _write_config(
        _meta(
            UNet2DConditionModel,
            sample_size=64,
            in_channels=4,
            out_channels=4,
            down_block_types=SD15_DOWN,
            up_block_types=SD15_UP,
            **SD15_ENCODER,
        ),
        sd15 / "unet",
    )
    _write_config(
        _meta(
            AutoencoderKL,
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            sample_size=512,
            layers_per_block=2,
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            norm_num_groups=32,
            scaling_factor=0.18215,
        ),
        sd15 / "vae",
    )
    CLIPTextConfig(
        vocab_size=49408,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        projection_dim=768,
        layer_norm_eps=1e-5,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
        architectures=["CLIPTextModel"],
    ).save_pretrained(sd15 / "text_encoder")
    PNDMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    ).save_config(sd15 / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (sd15 / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    for version, (positions, mid) in {"v1": (24, False), "v2": (32, True), "v3": (32, False)}.items():
        _write_config(
            _meta(
                MotionAdapter,
                block_out_channels=SD15_CHANNELS,
                motion_layers_per_block=2,
                motion_transformer_layers_per_block=1,
                motion_mid_block_layers_per_block=1,
                motion_transformer_layers_per_mid_block=1,
                motion_num_attention_heads=8,
                motion_norm_num_groups=32,
                motion_max_seq_length=positions,
                use_motion_mid_block=mid,
            ),
            root / f"motion_adapter_{version}",
        )

    motion_down = ("CrossAttnDownBlockMotion",) * 3 + ("DownBlockMotion",)
    for variant, (channels, simplified) in {"rgb": (4, True), "scribble": (3, False)}.items():
        _write_config(
            _meta(
                SparseControlNetModel,
                in_channels=4,
                conditioning_channels=channels,
                down_block_types=motion_down,
                **SD15_ENCODER,
                conditioning_embedding_out_channels=(16, 32, 96, 256),
                motion_max_seq_length=32,
                motion_num_attention_heads=8,
                concat_conditioning_mask=True,
                use_simplified_condition_embedding=simplified,
            ),
            root / f"sparsectrl_{variant}",
        )

    _write_config(
        _meta(
            ControlNetModel,
            in_channels=4,
            conditioning_channels=3,
            down_block_types=SD15_DOWN,
            **SD15_ENCODER,
            conditioning_embedding_out_channels=(16, 32, 96, 256),
        ),
        root / "controlnet_sd15",
    )


if __name__ == "__main__":
    make()
    print("\n".join(str(p.relative_to(HERE)) for p in sorted(HERE.rglob("*.json"))))
