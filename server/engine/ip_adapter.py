"""The SD1.5 IP-Adapters of tencent-ailab/IP-Adapter as modules whose state dicts are the public files' keys.

- plain (`ip-adapter_sd15`): `image_proj` = `proj` (Linear: CLIP image_embeds -> tokens × cross_attention_dim) and
  `norm` (LayerNorm); 4 tokens from the image encoder's projected `image_embeds`;
- plus (`ip-adapter-plus_sd15`, `ip-adapter-plus-face_sd15`): `image_proj` = the perceiver Resampler (`latents`,
  `proj_in`, `layers.N.0` attention, `layers.N.1` feed-forward, `proj_out`, `norm_out`); 16 tokens from the image
  encoder's penultimate hidden states;
- `ip_adapter`: per cross-attention of the UNet, `to_k_ip` and `to_v_ip` (Linear, no bias), numbered as the
  original numbers its attention processors (engine/references.py applies them).

The unconditional image tokens are the original's: the projection of zero image embeds (plain), the encoder's
hidden states of a zero image (plus).
"""

from __future__ import annotations

import math

import torch
from torch import nn

PLAIN, PLUS = "plain", "plus"
HEAD_DIM = 64  # the Resampler's dim_head in every public SD1.5 IP-Adapter


class ImageProjection(nn.Module):
    """Plain IP-Adapter: the image embedding projected to `tokens` context tokens."""

    def __init__(self, embed_dim: int, dim: int, tokens: int):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.proj = nn.Linear(embed_dim, tokens * dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(embeds).reshape(-1, self.tokens, self.dim))


class PerceiverAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        inner = heads * HEAD_DIM
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x, latents = self.norm1(x), self.norm2(latents)
        b, n, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat((x, latents), dim=-2)).chunk(2, dim=-1)
        q, k, v = (t.reshape(b, -1, self.heads, HEAD_DIM).transpose(1, 2) for t in (q, k, v))
        scale = 1 / math.sqrt(math.sqrt(HEAD_DIM))  # split between q and k, as the original (fp16 headroom)
        weight = (q * scale) @ (k * scale).transpose(-2, -1)
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        return self.to_out((weight @ v).permute(0, 2, 1, 3).reshape(b, n, -1))


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    # indices 0, 1, 3 carry weights: the original's keys layers.N.1.{0,1,3}
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(), nn.Linear(dim * mult, dim, bias=False)
    )


class Resampler(nn.Module):
    """IP-Adapter plus: learned queries attend to the image encoder's hidden states."""

    def __init__(self, dim: int, depth: int, heads: int, tokens: int, embed_dim: int, output_dim: int, mult: int):
        super().__init__()
        self.latents = nn.Parameter(torch.empty(1, tokens, dim))
        self.proj_in = nn.Linear(embed_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, heads), _feed_forward(dim, mult)]) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        latents = self.latents.repeat(x.shape[0], 1, 1)
        x = self.proj_in(x)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))


class IPLayer(nn.Module):
    """The image key and value projections of one UNet cross-attention."""

    def __init__(self, context_dim: int, hidden: int):
        super().__init__()
        self.to_k_ip = nn.Linear(context_dim, hidden, bias=False)
        self.to_v_ip = nn.Linear(context_dim, hidden, bias=False)


class IPAdapter(nn.Module):
    """One IP-Adapter checkpoint: `image_proj` and one IPLayer per UNet cross-attention, in the original's order."""

    def __init__(self, variant: str, image_proj: nn.Module, layers: list[IPLayer], tokens: int):
        super().__init__()
        self.variant, self.tokens = variant, tokens
        self.image_proj = image_proj
        self.layers = nn.ModuleList(layers)
        self.requires_grad_(False)

    @property
    def context_dim(self) -> int:
        return self.layers[0].to_k_ip.in_features

    @torch.no_grad()
    def image_tokens(self, encoder, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditional, unconditional) image tokens, each (images, tokens, context_dim), for preprocessed
        `pixels` (images, 3, S, S) on the encoder's device and dtype."""
        if self.variant == PLAIN:
            embeds = encoder(pixels).image_embeds
            return self.image_proj(embeds), self.image_proj(torch.zeros_like(embeds))
        hidden = encoder(pixels, output_hidden_states=True).hidden_states[-2]
        zero = encoder(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2]
        return self.image_proj(hidden), self.image_proj(zero)
