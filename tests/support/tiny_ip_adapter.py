"""IP-Adapter files in the public layouts of h94/IP-Adapter, keys and shapes written out here from the original
code (tencent-ailab/IP-Adapter: `ImageProjModel` and `IPAdapter.set_ip_adapter` in ip_adapter/ip_adapter.py,
`Resampler` with `IPAdapterPlus.init_proj`'s arguments in ip_adapter/resampler.py, `IPAttnProcessor`'s
`to_k_ip`/`to_v_ip`), not from the server's classes, so a wrong key or shape in the server fails its strict load;
and CLIP vision encoders in the transformers layout (h94/IP-Adapter `models/image_encoder`).

`plain_layout(...)` / `plus_layout(...)` give {"image_proj": {key: shape}, "ip_adapter": {key: shape}};
`write_bin` / `write_safetensors` write random weights (fixed seed) in the two public file layouts.
Full size: `FULL_CHANNELS` (SD1.5's block_out_channels), context 768, ViT-H/14 (hidden 1280, projection 1024).
"""

from __future__ import annotations

from pathlib import Path

FULL_CHANNELS = (320, 640, 1280, 1280)
FULL_CONTEXT = 768
VIT_H = {"hidden_size": 1280, "projection_dim": 1024}
CROSS_DOWN_BLOCKS = 3  # SD1.5: three CrossAttnDownBlock2D, then a DownBlock2D; mirrored up blocks
LAYERS_PER_BLOCK = 2


def cross_attention_widths(channels=FULL_CHANNELS) -> list[int]:
    """hidden_size of each cross-attention processor, in the order the original numbers them (the order of SD1.5's
    `unet.attn_processors`: down blocks, up blocks, mid block)."""
    down = [channels[i] for i in range(CROSS_DOWN_BLOCKS) for _ in range(LAYERS_PER_BLOCK)]
    up_channels = list(reversed(channels))
    up = [up_channels[i] for i in range(1, 4) for _ in range(LAYERS_PER_BLOCK + 1)]
    return down + up + [channels[-1]]


def _ip_layers(channels, context: int) -> dict:
    out = {}
    for j, hidden in enumerate(cross_attention_widths(channels)):
        key = 2 * j + 1  # attn1 (even numbers) carries no weights
        out[f"{key}.to_k_ip.weight"] = (hidden, context)
        out[f"{key}.to_v_ip.weight"] = (hidden, context)
    return out


def plain_layout(channels=FULL_CHANNELS, context=FULL_CONTEXT, projection=1024, tokens=4) -> dict:
    proj = {
        "proj.weight": (tokens * context, projection),
        "proj.bias": (tokens * context,),
        "norm.weight": (context,),
        "norm.bias": (context,),
    }
    return {"image_proj": proj, "ip_adapter": _ip_layers(channels, context)}


def plus_layout(
    channels=FULL_CHANNELS, context=FULL_CONTEXT, hidden=1280, tokens=16, depth=4, heads=12, dim_head=64, mult=4
) -> dict:
    """Resampler(dim=context, depth, dim_head, heads, num_queries=tokens, embedding_dim=hidden, output_dim=context,
    ff_mult=mult): IPAdapterPlus.init_proj's arguments on SD1.5 with ViT-H/14."""
    inner = dim_head * heads
    proj = {
        "latents": (1, tokens, context),
        "proj_in.weight": (context, hidden),
        "proj_in.bias": (context,),
        "proj_out.weight": (context, context),
        "proj_out.bias": (context,),
        "norm_out.weight": (context,),
        "norm_out.bias": (context,),
    }
    for n in range(depth):
        a, f = f"layers.{n}.0.", f"layers.{n}.1."
        proj.update(
            {
                a + "norm1.weight": (context,),
                a + "norm1.bias": (context,),
                a + "norm2.weight": (context,),
                a + "norm2.bias": (context,),
                a + "to_q.weight": (inner, context),
                a + "to_kv.weight": (2 * inner, context),
                a + "to_out.weight": (context, inner),
                f + "0.weight": (context,),
                f + "0.bias": (context,),
                f + "1.weight": (context * mult, context),
                f + "3.weight": (context, context * mult),
            }
        )
    return {"image_proj": proj, "ip_adapter": _ip_layers(channels, context)}


def random_weights(layout: dict, seed: int, std: float = 0.2) -> dict:
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for section, shapes in layout.items():
        out[section] = {}
        for key, shape in sorted(shapes.items()):
            noise = torch.randn(shape, generator=gen) * std
            is_norm_scale = key.endswith("weight") and len(shape) == 1
            out[section][key] = (1 + noise) if is_norm_scale else noise
    return out


def write_bin(state: dict, path: Path):
    import torch

    torch.save({s: {k: v.contiguous() for k, v in d.items()} for s, d in state.items()}, path)


def write_safetensors(state: dict, path: Path):
    from safetensors.torch import save_file

    save_file({f"{s}.{k}": v.contiguous() for s, d in state.items() for k, v in d.items()}, str(path))


def tiny_image_encoder(seed: int, hidden: int = 32, projection: int = 24, image_size: int = 32):
    """A random CLIPVisionModelWithProjection with the structure of ViT-H/14's, small."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=8,
        projection_dim=projection,
        hidden_act="gelu",
    )
    return CLIPVisionModelWithProjection(config).eval()


def build(root: Path, channels, context: int, seed: int):
    """Write the tiny image encoder (a transformers folder and a ComfyUI-style single file) and tiny plain and
    plus IP-Adapters (.bin and .safetensors) under `root`."""
    from safetensors.torch import save_file

    encoder = tiny_image_encoder(seed)
    encoder.save_pretrained(root / "image_encoder")
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(root / "clip_vision_tiny.safetensors"))
    plain = random_weights(plain_layout(channels, context, encoder.config.projection_dim), seed + 1)
    plus = random_weights(
        plus_layout(channels, context, encoder.config.hidden_size, depth=2, heads=1), seed + 2, std=0.1
    )
    write_bin(plain, root / "ip-adapter_tiny.bin")
    write_safetensors(plain, root / "ip-adapter_tiny.safetensors")
    write_bin(plus, root / "ip-adapter-plus_tiny.bin")
    write_safetensors(plus, root / "ip-adapter-plus_tiny.safetensors")
