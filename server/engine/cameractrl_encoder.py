"""CameraCtrl's camera pose encoder, with the key names of the public `CameraCtrl.ckpt` (`pose_encoder_state_dict`).

Built from hehao13/CameraCtrl `cameractrl/models/pose_adaptor.py` (CameraPoseEncoder) with the settings of its
`adv3_256_384_cameractrl_relora.yaml`: the 6-channel Plücker embedding is pixel-unshuffled by 8 (384 channels at
the latent size), `encoder_conv_in` (3×3) to 320 channels, then four scales of 320/640/1280/1280 channels, each
two residual blocks (ksize 1, sk: identity skip, the first block of scales 1-3 average-pooled by 2 and, where the
width changes, a 1×1 `in_conv`), each block followed by its own temporal transformer block (one self-attention
over the frames with a sinusoidal position table of 16 and 8 heads, then a GEGLU feed-forward). The output of
each scale's last block is that scale's feature: (batch, channels, frames, h, w) at 1/8, 1/16, 1/32, 1/64.

The widths, the unshuffle factor and the position length are read from the state dict; the head count is not in
the weights and is CameraCtrl's 8.
"""

from __future__ import annotations

import math

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

HEADS = 8


class _ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, down: bool):
        super().__init__()
        self.down = nn.AvgPool2d(2, 2) if down else None
        self.in_conv = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.block1 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.act = nn.ReLU()
        self.block2 = nn.Conv2d(out_channels, out_channels, 1)

    def forward(self, x):
        if self.down is not None:
            x = self.down(x)
        if self.in_conv is not None:
            x = self.in_conv(x)
        return self.block2(self.act(self.block1(x))) + x


class _PositionalEncoding(nn.Module):
    def __init__(self, dim: int, max_len: int):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(
                f"the CameraCtrl pose encoder takes at most {self.pe.shape[1]} frames at once, got "
                f"{x.shape[1]}; use context windows of at most {self.pe.shape[1]} frames"
            )
        return x + self.pe[:, : x.shape[1]]


class _TemporalSelfAttention(Attention):
    """Self-attention over frames; the position table is added to its input (queries, keys and values alike)."""

    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__(query_dim=dim, heads=heads, dim_head=dim // heads, bias=False)
        self.pos_encoder = _PositionalEncoding(dim, max_len)

    def forward(self, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        return super().forward(self.pos_encoder(hidden_states))


class _TemporalBlock(nn.Module):
    """CameraCtrl's TemporalTransformerBlock with one "Temporal_Self" attention: pre-norm attention, then a pre-norm
    GEGLU feed-forward, both residual. Works on (batch·h·w, frames, channels)."""

    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__()
        self.attention_blocks = nn.ModuleList([_TemporalSelfAttention(dim, heads, max_len)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim)])
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x):
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x)) + x
        return self.ff(self.ff_norm(x)) + x


class PoseEncoder(nn.Module):
    def __init__(
        self,
        channels=(320, 640, 1280, 1280),
        blocks: int = 2,
        downscale: int = 8,
        max_len: int = 16,
        heads: int = HEADS,
    ):
        super().__init__()
        self.channels, self.downscale = tuple(channels), downscale
        self.unshuffle = nn.PixelUnshuffle(downscale)
        self.encoder_conv_in = nn.Conv2d(6 * downscale * downscale, channels[0], 3, 1, 1)
        self.encoder_down_conv_blocks = nn.ModuleList()
        self.encoder_down_attention_blocks = nn.ModuleList()
        for i, width in enumerate(channels):
            before = channels[max(i - 1, 0)]
            self.encoder_down_conv_blocks.append(
                nn.ModuleList(
                    [_ResnetBlock(before if j == 0 else width, width, down=(j == 0 and i > 0)) for j in range(blocks)]
                )
            )
            self.encoder_down_attention_blocks.append(
                nn.ModuleList([_TemporalBlock(width, heads, max_len) for _ in range(blocks)])
            )

    @property
    def max_frames(self) -> int:
        return self.encoder_down_attention_blocks[0][0].attention_blocks[0].pos_encoder.pe.shape[1]

    def forward(self, plucker: torch.Tensor) -> list[torch.Tensor]:
        """(batch, 6, frames, H, W) -> one feature per scale, (batch, channels, frames, H/8·2⁻ˢ, W/8·2⁻ˢ)."""
        b, _, f, H, W = plucker.shape
        if H % self.downscale or W % self.downscale:
            raise ValueError(f"the Plücker embedding's size {W}x{H} must be a multiple of {self.downscale}")
        x = self.unshuffle(plucker.transpose(1, 2).reshape(b * f, 6, H, W))
        x = self.encoder_conv_in(x)
        features = []
        for convs, attentions in zip(self.encoder_down_conv_blocks, self.encoder_down_attention_blocks):
            for conv, attention in zip(convs, attentions):
                x = conv(x)
                c, h, w = x.shape[1:]
                x = x.reshape(b, f, c, h, w).permute(0, 3, 4, 1, 2).reshape(b * h * w, f, c)
                x = attention(x)
                x = x.reshape(b, h, w, f, c).permute(0, 3, 4, 1, 2).reshape(b * f, c, h, w)
            features.append(x.reshape(b, f, *x.shape[1:]).transpose(1, 2))
        return features

    @classmethod
    def from_state_dict(cls, state_dict: dict) -> PoseEncoder:
        """The encoder the shapes of a `pose_encoder_state_dict` describe, with its weights loaded strictly."""
        blocks = 1 + max(int(k.split(".")[2]) for k in state_dict if k.startswith("encoder_down_conv_blocks.0."))
        scales = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("encoder_down_conv_blocks."))
        channels = [
            state_dict[f"encoder_down_conv_blocks.{i}.{blocks - 1}.block2.weight"].shape[0] for i in range(scales)
        ]
        downscale = math.isqrt(state_dict["encoder_conv_in.weight"].shape[1] // 6)
        max_len = state_dict["encoder_down_attention_blocks.0.0.attention_blocks.0.pos_encoder.pe"].shape[1]
        with torch.device("meta"):  # no random initialisation: every tensor comes from the state dict
            encoder = cls(channels, blocks, downscale, max_len)
        encoder.load_state_dict(state_dict, strict=True, assign=True)
        return encoder
