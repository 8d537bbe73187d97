"""Tiny files of the other model families (SDXL and Pony, SD2, SD3, Flux) that fill A1111 and ComfyUI folders, in
their public key layouts: only the keys that tell a family and the shapes that matter (cross-attention and text
widths, latent channels), zeros elsewhere, written with safetensors and torch.save as the public files are.

`FILES` names each: models.toml name -> (kind, the family server/loaders/family.py must read, path under the root).
`build(root, tiny_root)` writes them and a ``models.toml`` that also names a few tiny SD1.5 models of `tiny_root`
(tests/support/tiny_models.py), so a server on it runs jobs and lists both. Key names follow the original
projects: Stability-AI/generative-models (``conditioner.embedders``, ``label_emb``), kohya's sd-scripts LoRAs
(``lora_te1_``/``lora_te2_``, SGM block names, ``ss_*`` metadata), diffusers/PEFT LoRAs, BFL's Flux
(``double_blocks``/``single_blocks``), SD3's MMDiT (``joint_blocks``), AnimateDiff's SDXL motion module (three UNet
levels), Hotshot-XL's ``temporal_attentions``, IP-Adapter SDXL, ControlNet-LLLite.
"""

from __future__ import annotations

import json
from pathlib import Path

SGM = "model.diffusion_model."
W = 8  # every width that does not tell the family


def _lora(name: str, width_in: int, width_out: int = W, rank: int = 4, style: str = "kohya") -> dict:
    if style == "kohya":
        return {
            f"{name}.lora_down.weight": (rank, width_in),
            f"{name}.lora_up.weight": (width_out, rank),
            f"{name}.alpha": (),
        }
    return {f"{name}.lora_A.weight": (rank, width_in), f"{name}.lora_B.weight": (width_out, rank)}


def _unet_sgm(prefix: str, context: int, proj_in=(W, W, 1, 1)) -> dict:
    block = f"{prefix}input_blocks.4.1."
    return {
        f"{prefix}input_blocks.0.0.weight": (W, 4, 3, 3),
        f"{block}proj_in.weight": proj_in,
        f"{block}transformer_blocks.0.attn1.to_q.weight": (W, W),
        f"{block}transformer_blocks.0.attn2.to_k.weight": (W, context),
        f"{block}transformer_blocks.0.attn2.to_v.weight": (W, context),
    }


def _vae(prefix: str = "", latent: int = 4) -> dict:
    return {
        f"{prefix}encoder.conv_in.weight": (W, 3, 3, 3),
        f"{prefix}encoder.conv_out.weight": (2 * latent, W, 3, 3),
        f"{prefix}decoder.conv_in.weight": (W, latent, 3, 3),
        f"{prefix}decoder.conv_out.weight": (3, W, 3, 3),
    }


def _motion(blocks: str, levels: int, per_level: int) -> dict:
    out = {}
    for level in range(levels):
        for i in range(per_level):
            tt = f"{blocks}.{level}.motion_modules.{i}.temporal_transformer."
            out[tt + "proj_in.weight"] = (W, W)
            out[tt + "transformer_blocks.0.attention_blocks.0.pos_encoder.pe"] = (1, 32, W)
    return out


def _sdxl_checkpoint(prefix=SGM) -> dict:
    return {
        "conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight": (W, 768),
        "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight": (3 * W, 1280),
        f"{prefix}label_emb.0.0.weight": (W, 2816),
        **_unet_sgm(prefix, 2048, proj_in=(W, W)),
        **_vae("first_stage_model."),
    }


LAYOUTS = {  # path under the root -> (key -> shape, metadata, pickle form: "flat" | "state_dict" | "nested")
    # checkpoints
    "checkpoints/pony_v6.safetensors": (_sdxl_checkpoint(), None, None),
    "checkpoints/sd_xl_base_1.0_unet.safetensors": (
        {k[len(SGM) :]: v for k, v in _sdxl_checkpoint().items() if k.startswith(SGM)},
        None,
        None,
    ),
    "checkpoints/v2-1_768-ema-pruned.ckpt": (
        {
            "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": (3 * W, 1024),
            **_unet_sgm(SGM, 1024, proj_in=(W, W)),
            **_vae("first_stage_model."),
        },
        None,
        "state_dict",
    ),
    "checkpoints/sd3_medium_incl_clips.safetensors": (
        {
            f"{SGM}x_embedder.proj.weight": (1536, 16, 2, 2),
            f"{SGM}joint_blocks.0.context_block.attn.qkv.weight": (3 * W, 1536),
            f"{SGM}joint_blocks.0.x_block.attn.qkv.weight": (3 * W, 1536),
            "text_encoders.clip_g.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight": (W, 1280),
            **_vae("first_stage_model.", latent=16),
        },
        None,
        None,
    ),
    "checkpoints/flux1-dev.safetensors": (
        {
            "img_in.weight": (W, 64),
            "double_blocks.0.img_attn.qkv.weight": (3 * W, 3072),
            "double_blocks.0.img_attn.norm.key_norm.scale": (128,),
            "single_blocks.0.linear1.weight": (W, 3072),
            "guidance_in.in_layer.weight": (W, 256),
        },
        None,
        None,
    ),
    "checkpoints/sdxl_diffusers": (
        {
            "unet": {
                "_class_name": "UNet2DConditionModel",
                "cross_attention_dim": 2048,
                "addition_embed_type": "text_time",
            },
            "model_index": {"_class_name": "StableDiffusionXLPipeline"},
        },
        None,
        "folder",
    ),
    # LoRAs
    "loras/pony_style_kohya.safetensors": (
        {
            **_lora("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", 2048),
            **_lora("lora_te1_text_model_encoder_layers_0_self_attn_q_proj", 768),
            **_lora("lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 1280),
        },
        {"ss_network_module": "networks.lora"},
        None,
    ),
    "loras/xl_unet_only.safetensors": (
        _lora("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k", 2048),
        None,
        None,
    ),
    "loras/xl_diffusers.safetensors": (
        {
            **_lora("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k", 2048, style="peft"),
            **_lora("text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj", 1280, style="peft"),
        },
        None,
        None,
    ),
    "loras/xl_by_metadata.safetensors": (
        _lora("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q", W),
        {"ss_base_model_version": "sdxl_base_v1-0"},
        None,
    ),
    "loras/xl_by_modelspec.safetensors": (
        _lora("lora_unet_down_blocks_1_attentions_0_proj_out", W),
        {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"},
        None,
    ),
    "loras/xl_loha.safetensors": (
        {
            f"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.hada_{w}": shape
            for w, shape in (("w1_a", (W, 4)), ("w1_b", (4, 2048)), ("w2_a", (W, 4)), ("w2_b", (4, 2048)))
        },
        None,
        None,
    ),
    "loras/sd2_style.safetensors": (_lora("lora_te_text_model_encoder_layers_0_self_attn_q_proj", 1024), None, None),
    "loras/flux_kohya.safetensors": (_lora("lora_unet_double_blocks_0_img_attn_qkv", 3072), None, None),
    "loras/flux_diffusers_double.safetensors": (
        _lora("transformer.transformer_blocks.0.attn.to_q", 3072, style="peft"),
        None,
        None,
    ),
    "loras/sd3_diffusers.safetensors": (
        _lora("transformer.transformer_blocks.0.attn.to_q", 1536, style="peft"),
        None,
        None,
    ),
    "loras/sd15_real_width.safetensors": (
        _lora("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 768),
        None,
        None,
    ),
    # ControlNets
    "controlnet/controlnet_xl_canny.safetensors": (
        {
            "control_model.input_hint_block.0.weight": (16, 3, 3, 3),
            "control_model.label_emb.0.0.weight": (W, 2816),
            **_unet_sgm("control_model.", 2048, proj_in=(W, W)),
        },
        None,
        None,
    ),
    "controlnet/diffusers_xl_depth_full.safetensors": (
        {
            "controlnet_cond_embedding.conv_in.weight": (16, 3, 3, 3),
            "controlnet_down_blocks.0.weight": (W, W, 1, 1),
            "add_embedding.linear_1.weight": (W, 2816),
            "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (W, 2048),
        },
        None,
        None,
    ),
    "controlnet/controlnet_xl_folder": (
        {"config": {"_class_name": "ControlNetModel", "cross_attention_dim": 2048, "addition_embed_type": "text_time"}},
        None,
        "folder",
    ),
    "controlnet/controllllite_xl_canny.safetensors": (
        {"lllite_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.conditioning1.0.weight": (W, 3, 4, 4)},
        None,
        None,
    ),
    "controlnet/controlnet_sd21_depth.ckpt": (
        {
            "control_model.input_hint_block.0.weight": (16, 3, 3, 3),
            **_unet_sgm("control_model.", 1024, proj_in=(W, W)),
        },
        None,
        "flat",
    ),
    # VAEs
    "vae/sdxl_vae.safetensors": (_vae(), None, None),
    "vae/ae.safetensors": (_vae(latent=16), None, None),
    "vae/sdxl_vae_diffusers": (
        {
            "config": {
                "_class_name": "AutoencoderKL",
                "latent_channels": 4,
                "scaling_factor": 0.13025,
                "block_out_channels": [128, 256, 512, 512],
            }
        },
        None,
        "folder",
    ),
    # motion modules
    "animatediff_models/mm_sdxl_v10_beta.ckpt": (
        {**_motion("down_blocks", 3, 2), **_motion("up_blocks", 3, 3)},
        None,
        "flat",
    ),
    "animatediff_models/hsxl_temporal_layers.safetensors": (
        {f"down_blocks.{level}.temporal_attentions.{i}.proj_in.weight": (W, W) for level in range(3) for i in range(2)},
        None,
        None,
    ),
    "animatediff_models/animatediff-motion-adapter-sdxl-beta": (
        {"config": {"_class_name": "MotionAdapter", "block_out_channels": [320, 640, 1280]}},
        None,
        "folder",
    ),
    # embeddings
    "embeddings/pony_neg.safetensors": ({"clip_g": (2, 1280), "clip_l": (2, 768)}, None, None),
    "embeddings/sd2_neg.safetensors": ({"emb_params": (2, 1024)}, None, None),
    "embeddings/sd15_real_width.pt": ({"string_to_param": {"*": (2, 768)}}, None, "nested"),
    # IP-Adapters
    "ipadapter/ip-adapter_sdxl.bin": (
        {
            "image_proj": {"proj.weight": (W, 1280)},
            "ip_adapter": {"1.to_k_ip.weight": (W, 2048), "1.to_v_ip.weight": (W, 2048)},
        },
        None,
        "nested",
    ),
    # not a model family
    "other/t5xxl_fp16.safetensors": ({"encoder.block.0.layer.0.SelfAttention.q.weight": (W, W)}, None, None),
}

FILES = {  # models.toml name -> (kind, family, path)
    "pony_v6": ("base", "sdxl", "checkpoints/pony_v6.safetensors"),
    "sd_xl_base_1.0_unet": ("base", "sdxl", "checkpoints/sd_xl_base_1.0_unet.safetensors"),
    "v2-1_768": ("base", "sd2", "checkpoints/v2-1_768-ema-pruned.ckpt"),
    "sd3_medium": ("base", "sd3", "checkpoints/sd3_medium_incl_clips.safetensors"),
    "flux1-dev": ("base", "flux", "checkpoints/flux1-dev.safetensors"),
    "sdxl_diffusers": ("base", "sdxl", "checkpoints/sdxl_diffusers"),
    "pony_style": ("lora", "sdxl", "loras/pony_style_kohya.safetensors"),
    "xl_unet_only": ("lora", "sdxl", "loras/xl_unet_only.safetensors"),
    "xl_diffusers": ("lora", "sdxl", "loras/xl_diffusers.safetensors"),
    "xl_by_metadata": ("lora", "sdxl", "loras/xl_by_metadata.safetensors"),
    "xl_by_modelspec": ("lora", "sdxl", "loras/xl_by_modelspec.safetensors"),
    "xl_loha": ("lora", "sdxl", "loras/xl_loha.safetensors"),  # LyCORIS LoHa
    "sd2_style": ("lora", "sd2", "loras/sd2_style.safetensors"),
    "flux_kohya": ("lora", "flux", "loras/flux_kohya.safetensors"),
    "flux_diffusers_double": ("lora", "flux", "loras/flux_diffusers_double.safetensors"),
    "sd3_diffusers": ("lora", "sd3", "loras/sd3_diffusers.safetensors"),
    "sd15_real_width": ("lora", "sd15", "loras/sd15_real_width.safetensors"),
    "xl_canny": ("controlnet", "sdxl", "controlnet/controlnet_xl_canny.safetensors"),
    "xl_depth": ("controlnet", "sdxl", "controlnet/diffusers_xl_depth_full.safetensors"),
    "xl_folder": ("controlnet", "sdxl", "controlnet/controlnet_xl_folder"),
    "xl_lllite": ("controlnet", "sdxl", "controlnet/controllllite_xl_canny.safetensors"),
    "sd21_depth": ("controlnet", "sd2", "controlnet/controlnet_sd21_depth.ckpt"),
    "sdxl_vae": ("vae", None, "vae/sdxl_vae.safetensors"),  # SD1.5's keys and shapes: not detectable
    "flux_ae": ("vae", "sd3_flux", "vae/ae.safetensors"),
    "sdxl_vae_diffusers": ("vae", "sdxl", "vae/sdxl_vae_diffusers"),
    "mm_sdxl": ("motion_module", "sdxl", "animatediff_models/mm_sdxl_v10_beta.ckpt"),
    "hotshot_xl": ("motion_module", "sdxl", "animatediff_models/hsxl_temporal_layers.safetensors"),
    "mm_sdxl_diffusers": ("motion_module", "sdxl", "animatediff_models/animatediff-motion-adapter-sdxl-beta"),
    "pony_neg": ("embedding", "sdxl", "embeddings/pony_neg.safetensors"),
    "sd2_neg": ("embedding", "sd2", "embeddings/sd2_neg.safetensors"),
    "sd15_wide": ("embedding", "sd15", "embeddings/sd15_real_width.pt"),
    "ip_adapter_sdxl": ("ip_adapter", "sdxl", "ipadapter/ip-adapter_sdxl.bin"),
    "t5xxl": ("lora", None, "other/t5xxl_fp16.safetensors"),
}

SD15 = {  # models.toml name -> (kind, path under the tiny SD1.5 models' root): what the jobs run on
    "sd15": ("base", "sd15"),
    "v2": ("motion_module", "motion_v2"),
    "depth": ("controlnet", "controlnet/depth"),
    "style": ("lora", "lora/style.safetensors"),
    "tiny-ft": ("vae", "vae/tiny-ft-mse.safetensors"),
    "EasyNegative": ("embedding", "embeddings/EasyNegative.safetensors"),
    "vit_h": ("image_encoder", "image_encoder"),
}


def write(root: Path, path: str) -> Path:
    import torch
    from safetensors.torch import save_file

    shapes, metadata, form = LAYOUTS[path]
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if form == "folder":
        target.mkdir(exist_ok=True)
        for name, config in shapes.items():
            where = target / ("" if name in ("config", "model_index") else name)
            where.mkdir(exist_ok=True)
            file = "model_index.json" if name == "model_index" else "config.json"
            (where / file).write_text(json.dumps(config))
        return target

    def tensors(layout):
        return {
            k: tensors(v) if isinstance(v, dict) else torch.zeros(v, dtype=torch.float16) for k, v in layout.items()
        }

    if target.suffix == ".safetensors":
        save_file(tensors(shapes), target, metadata=metadata)
    else:
        torch.save({"state_dict": tensors(shapes)} if form == "state_dict" else tensors(shapes), target)
    return target


def build(root, tiny_root) -> Path:
    """Every file of LAYOUTS under `root`, and `root/models.toml` naming FILES and the SD1.5 models of SD15 (taken
    from the tiny models at `tiny_root`). Returns the models.toml path."""
    root, tiny_root = Path(root), Path(tiny_root)
    for path in LAYOUTS:
        write(root, path)
    lines = []
    for name, (kind, _, path) in FILES.items():
        lines += [f'[{kind}."{name}"]', f'source = "{root / path}"', ""]
    for name, (kind, path) in SD15.items():
        lines += [f'[{kind}."{name}"]', f'source = "{tiny_root / path}"']
        lines += ['config = "' + str(tiny_root / "sd15") + '"'] if kind == "vae" else []
        lines.append("")
    (root / "models.toml").write_text("\n".join(lines))
    return root / "models.toml"


def build_with(python: str | None, root, tiny_root) -> Path:
    """`build` in this process, or with `python` (one with torch: Blender's has none) in a child process."""
    import subprocess
    import sys

    if python is None or Path(python) == Path(sys.executable):
        return build(root, tiny_root)
    repo = Path(__file__).resolve().parents[2]
    code = f"from tests.support.tiny_families import build; build({str(root)!r}, {str(tiny_root)!r})"
    done = subprocess.run([python, "-c", code], cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the tiny family files with {python} failed:\n{done.stderr[-3000:]}")
    return Path(root) / "models.toml"
