"""Tiny random models saved in the same formats and key layouts as the public files.

`build(root)` writes, deterministically (fixed seeds, identical bytes on every build):

- ``sd15/``: a diffusers SD1.5-structured pipeline folder (UNet, VAE, CLIP text encoder, CLIP tokenizer, DDIM);
  ``sd15.safetensors``: the same weights in the original LDM single-file layout;
- motion modules: ``motion_v1/``, ``motion_v2/``, ``motion_v3/`` (MotionAdapter folders) and their original-format
  twins ``mm_sd_v15.ckpt`` (v1, 24 positions), ``mm_sd_v15_v2.ckpt`` (v2, mid block, 32), ``v3_sd15_mm.ckpt``
  (v3, 32);
- the eight camera motion LoRAs: ``motion_lora/<name>/diffusion_pytorch_model.safetensors`` (diffusers format)
  and the original ``v2_lora_<Stem>.ckpt``;
- ControlNets ``controlnet/{depth,normal,openpose}/`` and ``control_v11f1p_sd15_depth.pth`` (original
  ``control_model.*`` layout of the depth one);
- SparseCtrl RGB: ``sparsectrl_rgb/`` and ``v3_sd15_sparsectrl_rgb.ckpt`` (original layout);
- an image LoRA in kohya format: ``lora/style.safetensors``;
- IP-Adapters (tests/support/tiny_ip_adapter.py): plain and plus, ``.bin`` and ``.safetensors``, and their CLIP
  vision encoder ``image_encoder/`` (transformers folder) and ``clip_vision_tiny.safetensors`` (single file);
- ``models.toml``: the server's model config naming all of the above.

Only torch, diffusers, transformers and safetensors are needed (no bpy). Builds in a few seconds on a CPU.
Test support, not shipped: `python -m tests.support.tiny_models --out DIR` writes them for a server run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from . import tiny_embeddings, tiny_ip_adapter
from . import tiny_vae as separate_vae
from .original_layout import (
    clip_to_ldm,
    controlnet_to_ldm,
    motion_lora_to_original,
    motion_to_original,
    unet_to_ldm,
    vae_to_ldm,
)

TINY_VERSION = 3
_STAMP = f"# Marionette tiny models, TINY_VERSION = {TINY_VERSION}"

# The tiny UNet keeps SD1.5's block structure (3 cross-attention down blocks + 1 plain, layers_per_block 2,
# mirrored up blocks, cross-attention mid block) with small channels.
UNET_CHANNELS = (8, 16, 16, 16)
NORM_GROUPS = 4
ATTENTION_HEADS = 2  # SD1.5's "attention_head_dim" (really the number of heads)
MOTION_HEADS = 2
TEXT_DIM = 16
VAE_CHANNELS = (8, 8, 16, 16)  # 4 levels: scale factor 8, so a 64x64 image is an 8x8 latent
LAYERS_PER_BLOCK = 2
LORA_RANK = 4

SEEDS = {
    "unet": 1,
    "vae": 2,
    "text_encoder": 3,
    "motion_v1": 11,
    "motion_v2": 12,
    "motion_v3": 13,
    "controlnet/depth": 21,
    "controlnet/normal": 22,
    "controlnet/openpose": 23,
    "sparsectrl_rgb": 31,
    "lora/style": 41,
    "motion_lora": 100,
    "ip_adapter": 51,
}


# ---------------------------------------------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------------------------------------------


def _byte_chars() -> list[str]:
    """The 256 printable characters byte-level BPE uses for the bytes 0..255, in byte order."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


_WORDS = (
    "a",
    "the",
    "of",
    "and",
    "in",
    "on",
    "at",
    "to",
    "cat",
    "dog",
    "man",
    "woman",
    "walking",
    "running",
    "camera",
    "zoom",
    "pan",
    "tilt",
    "forest",
    "city",
    "street",
    "night",
    "day",
    "portrait",
    "dancing",
)


def write_tokenizer(folder: Path) -> None:
    """A tiny CLIP BPE tokenizer: byte-level base tokens with and without `</w>`, merges for a few words,
    `<|startoftext|>` and `<|endoftext|>` last (as in CLIP, so the end token has the largest id)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = _byte_chars()
    vocab_list = base + [c + "</w>" for c in base]
    merges, merge_set, seen = [], set(), set(vocab_list)
    for word in _WORDS:
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:
            pair = (symbols[0], symbols[1])
            if pair not in merge_set:
                merges.append(pair)
                merge_set.add(pair)
            merged = pair[0] + pair[1]
            if merged not in seen:
                vocab_list.append(merged)
                seen.add(merged)
            symbols = [merged] + symbols[2:]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, sort_keys=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    special = {k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------------------


def _fill_zeros(model, seed: int, std: float = 0.05) -> None:
    """Give every all-zero parameter (zero-initialised projections) small random values, so each one matters."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.dtype.is_floating_point and not torch.any(p):
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def _seeded(seed: int):
    import torch

    torch.manual_seed(seed)


def tiny_unet():
    from diffusers import UNet2DConditionModel

    _seeded(SEEDS["unet"])
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=LAYERS_PER_BLOCK,
        block_out_channels=UNET_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=ATTENTION_HEADS,
        norm_num_groups=NORM_GROUPS,
    )


def tiny_vae():
    from diffusers import AutoencoderKL

    _seeded(SEEDS["vae"])
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        sample_size=64,
        layers_per_block=2,
        block_out_channels=VAE_CHANNELS,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=4,
        scaling_factor=0.18215,
    )


def tiny_text_encoder(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    _seeded(SEEDS["text_encoder"])
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_DIM,
        intermediate_size=2 * TEXT_DIM,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        projection_dim=TEXT_DIM,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,  # SD1.5's values (eos 2: pooled output by argmax id)
    )
    return CLIPTextModel(config).eval()


def tiny_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def tiny_motion_adapter(version: str):
    from diffusers import MotionAdapter

    _seeded(SEEDS[f"motion_{version}"])
    adapter = MotionAdapter(
        block_out_channels=UNET_CHANNELS,
        motion_layers_per_block=LAYERS_PER_BLOCK,
        motion_num_attention_heads=MOTION_HEADS,
        motion_norm_num_groups=NORM_GROUPS,
        motion_max_seq_length=24 if version == "v1" else 32,
        use_motion_mid_block=version == "v2",
    )
    _fill_zeros(adapter, SEEDS[f"motion_{version}"])
    return adapter


def tiny_controlnet(name: str):
    from diffusers import ControlNetModel

    _seeded(SEEDS[f"controlnet/{name}"])
    model = ControlNetModel(
        in_channels=4,
        conditioning_channels=3,
        layers_per_block=LAYERS_PER_BLOCK,
        block_out_channels=UNET_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=ATTENTION_HEADS,
        norm_num_groups=NORM_GROUPS,
        conditioning_embedding_out_channels=(4, 8, 8, 16),
    )
    _fill_zeros(model, SEEDS[f"controlnet/{name}"])
    return model


def tiny_sparsectrl_rgb():
    from diffusers import SparseControlNetModel

    _seeded(SEEDS["sparsectrl_rgb"])
    model = SparseControlNetModel(
        in_channels=4,
        conditioning_channels=4,
        layers_per_block=LAYERS_PER_BLOCK,
        block_out_channels=UNET_CHANNELS,
        down_block_types=("CrossAttnDownBlockMotion",) * 3 + ("DownBlockMotion",),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=ATTENTION_HEADS,
        norm_num_groups=NORM_GROUPS,
        motion_max_seq_length=32,
        motion_num_attention_heads=MOTION_HEADS,
        concat_conditioning_mask=True,
        use_simplified_condition_embedding=True,
    )
    _fill_zeros(model, SEEDS["sparsectrl_rgb"])
    return model


def motion_lora_state_dict(seed: int, with_mid_block: bool = True) -> dict:
    """A random motion LoRA in the diffusers format of the hub repos `guoyww/animatediff-motion-lora-*`:
    `unet.<block>.motion_modules.N.transformer_blocks.0.attn{1,2}.processor.to_{q,k,v,out}_lora.{down,up}.weight`.
    Both up and down are non-zero, so the LoRA changes the output."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    blocks = []
    for b, c in enumerate(UNET_CHANNELS):
        blocks += [(f"down_blocks.{b}.motion_modules.{j}", c) for j in range(LAYERS_PER_BLOCK)]
    if with_mid_block:
        blocks.append(("mid_block.motion_modules.0", UNET_CHANNELS[-1]))
    for b, c in enumerate(reversed(UNET_CHANNELS)):
        blocks += [(f"up_blocks.{b}.motion_modules.{j}", c) for j in range(LAYERS_PER_BLOCK + 1)]
    out = {}
    for head, c in blocks:
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out"):
                key = f"unet.{head}.transformer_blocks.0.{attn}.processor.{proj}_lora"
                out[f"{key}.down.weight"] = torch.randn(LORA_RANK, c, generator=gen) * 0.3
                out[f"{key}.up.weight"] = torch.randn(c, LORA_RANK, generator=gen) * 0.3
    return out


def kohya_lora(unet, text_encoder, seed: int) -> dict:
    """An SD1.5 image LoRA in kohya's format (`lora_unet_*` / `lora_te_*`, `.lora_down`, `.lora_up`, `.alpha`)
    on every attention projection of the UNet and the text encoder."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = {}
    targets = []
    for name, module in sorted(unet.named_modules()):
        if isinstance(module, torch.nn.Linear) and re.search(r"\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$", name):
            targets.append(("lora_unet_" + name.replace(".", "_"), module))
    for name, module in sorted(text_encoder.named_modules()):
        if isinstance(module, torch.nn.Linear) and re.search(r"self_attn\.(q|k|v|out)_proj$", name):
            name = name if name.startswith("text_model.") else "text_model." + name
            targets.append(("lora_te_" + name.replace(".", "_"), module))
    for key, module in targets:
        out[f"{key}.lora_down.weight"] = torch.randn(LORA_RANK, module.in_features, generator=gen) * 0.2
        out[f"{key}.lora_up.weight"] = torch.randn(module.out_features, LORA_RANK, generator=gen) * 0.2
        out[f"{key}.alpha"] = torch.tensor(float(LORA_RANK))
    return out


# ---------------------------------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------------------------------


def _save_ckpt(state_dict: dict, path: Path) -> None:
    import torch

    torch.save({k: v.contiguous() for k, v in state_dict.items()}, path)


def _models_toml() -> str:
    from server.protocol import MOTION_LORAS

    lines = [_STAMP, "# Paths are relative to this file's folder.", ""]

    def table(kind, name, source, config=None, **fields):
        lines.append(f"[{kind}.{name}]")
        lines.append(f'source = "{source}"')
        if config:
            lines.append(f'config = "{config}"')
        lines.extend(f'{k} = "{v}"' for k, v in fields.items())
        lines.append("")

    table("base", "sd15", "sd15")
    table("base", "sd15-single", "sd15.safetensors", "sd15")
    table("motion_module", "v2", "motion_v2")
    table("motion_module", "v2-original", "mm_sd_v15_v2.ckpt", "motion_v2")
    table("motion_module", "v3", "motion_v3")
    table("motion_module", "v3-original", "v3_sd15_mm.ckpt", "motion_v3")
    table("motion_module", "v1", "motion_v1")
    table("motion_module", "v1-original", "mm_sd_v15.ckpt", "motion_v1")
    for name in ("depth", "normal", "openpose"):
        table("controlnet", name, f"controlnet/{name}")
    table("controlnet", "depth-original", "control_v11f1p_sd15_depth.pth", "controlnet/depth")
    table("sparsectrl", "rgb", "sparsectrl_rgb")
    table("sparsectrl", "rgb-original", "v3_sd15_sparsectrl_rgb.ckpt", "sparsectrl_rgb")
    for name in MOTION_LORAS:
        table("motion_lora", name, f"motion_lora/{name}")
    for name, (_, stem, _) in MOTION_LORAS.items():
        table("motion_lora", f"{name}-original", f"{stem}.ckpt")
    table("lora", "style", "lora/style.safetensors")
    table("image_encoder", "vit_h", "image_encoder")
    table("image_encoder", "vit_h_single", "clip_vision_tiny.safetensors", "image_encoder")
    for name, (file, encoder) in IP_ADAPTERS.items():
        table("ip_adapter", name, file, image_encoder=encoder)
    return "\n".join(lines + separate_vae.toml_lines()) + tiny_embeddings.TOML


IP_ADAPTERS = {  # name -> (file, image encoder); "ip_adapter" is the spec's default name, as in the default config
    "ip_adapter": ("ip-adapter_tiny.safetensors", "vit_h"),
    "ip_adapter_bin": ("ip-adapter_tiny.bin", "vit_h_single"),
    "ip_adapter_plus": ("ip-adapter-plus_tiny.safetensors", "vit_h"),
    "ip_adapter_plus_bin": ("ip-adapter-plus_tiny.bin", "vit_h_single"),
}


def is_built(root: Path) -> bool:
    toml = Path(root) / "models.toml"
    try:
        return toml.read_text().splitlines()[0] == _STAMP
    except (OSError, IndexError):
        return False


def build(root) -> Path:
    """Write the tiny models under `root` (skipped when `root/models.toml` is from this TINY_VERSION).
    Returns the path of `models.toml`."""
    root = Path(root)
    if is_built(root):
        return root / "models.toml"

    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file
    from transformers import CLIPTokenizer

    from server.protocol import MOTION_LORAS

    root.mkdir(parents=True, exist_ok=True)
    for stale in ("models.toml",):
        (root / stale).unlink(missing_ok=True)
    with torch.random.fork_rng(devices=[]):
        # base: diffusers folder + LDM single file
        sd15 = root / "sd15"
        shutil.rmtree(sd15, ignore_errors=True)
        write_tokenizer(sd15 / "tokenizer")
        tokenizer = CLIPTokenizer.from_pretrained(sd15 / "tokenizer")
        unet, vae = tiny_unet(), tiny_vae()
        text_encoder = tiny_text_encoder(len(tokenizer))
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=tiny_scheduler(),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        for name in ("unet", "vae", "text_encoder"):
            getattr(pipe, name).save_pretrained(sd15 / name)
        pipe.scheduler.save_pretrained(sd15 / "scheduler")
        pipe.save_config(sd15)  # model_index.json; the tokenizer folder is ours
        single = {}
        single.update(unet_to_ldm(unet.state_dict(), unet.config))
        single.update(vae_to_ldm(vae.state_dict(), vae.config))
        single.update(clip_to_ldm(text_encoder.state_dict(), text_encoder.config.max_position_embeddings))
        save_file({k: v.contiguous() for k, v in single.items()}, root / "sd15.safetensors")
        separate_vae.build(root, vae)

        # motion modules
        for version, filename in (("v1", "mm_sd_v15.ckpt"), ("v2", "mm_sd_v15_v2.ckpt"), ("v3", "v3_sd15_mm.ckpt")):
            adapter = tiny_motion_adapter(version)
            adapter.save_pretrained(root / f"motion_{version}")
            _save_ckpt(motion_to_original(adapter.state_dict()), root / filename)

        # motion LoRAs
        for i, (name, (_, stem, _)) in enumerate(MOTION_LORAS.items()):
            lora = motion_lora_state_dict(SEEDS["motion_lora"] + i)
            (root / "motion_lora" / name).mkdir(parents=True, exist_ok=True)
            save_file(lora, root / "motion_lora" / name / "diffusion_pytorch_model.safetensors")
            _save_ckpt(motion_lora_to_original(lora), root / f"{stem}.ckpt")

        # ControlNets
        for name in ("depth", "normal", "openpose"):
            controlnet = tiny_controlnet(name)
            controlnet.save_pretrained(root / "controlnet" / name)
            if name == "depth":
                _save_ckpt(
                    controlnet_to_ldm(controlnet.state_dict(), controlnet.config),
                    root / "control_v11f1p_sd15_depth.pth",
                )

        # SparseCtrl RGB
        sparse = tiny_sparsectrl_rgb()
        sparse.save_pretrained(root / "sparsectrl_rgb")
        _save_ckpt(motion_to_original(sparse.state_dict()), root / "v3_sd15_sparsectrl_rgb.ckpt")

        # image LoRA
        (root / "lora").mkdir(exist_ok=True)
        save_file(kohya_lora(unet, text_encoder, SEEDS["lora/style"]), root / "lora" / "style.safetensors")

        # IP-Adapters and their image encoder
        tiny_ip_adapter.build(root, UNET_CHANNELS, TEXT_DIM, SEEDS["ip_adapter"])
        tiny_embeddings.build(root, TEXT_DIM)

    tmp = root / "models.toml.tmp"
    tmp.write_text(_models_toml())
    os.replace(tmp, root / "models.toml")
    return root / "models.toml"


def build_with(python: str | None, root) -> Path:
    """`build(root)` in this process, or with `python` (a Python with torch: Blender's has none) in a child process.
    Returns the path of `models.toml`."""
    import subprocess
    import sys

    if python is None or Path(python) == Path(sys.executable):
        return build(root)
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [python, "-m", "tests.support.tiny_models", "--out", str(root)], cwd=repo, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the tiny models with {python} failed:\n{done.stderr[-3000:]}")
    return Path(root) / "models.toml"


def main(argv=None) -> None:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m tests.support.tiny_models",
        description="Write the tiny random models and their models.toml (for tests, the demo "
        "and benches: serve them with python -m server --models DIR/models.toml)",
    )
    p.add_argument("--out", type=Path, default=Path("out/tiny"), help="folder to write (default out/tiny)")
    print(build(p.parse_args(argv).out))


if __name__ == "__main__":
    main()
