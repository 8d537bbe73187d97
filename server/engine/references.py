"""IP-Adapter image references inside the one denoising loop: several references, each with its own weight, step
range (start..end, the ControlNet rule) and frame range (first..last).

The computation is tencent-ailab/IP-Adapter's decoupled cross-attention (`IPAttnProcessor`) on every
cross-attention (attn2) of the motion UNet's spatial transformers:

    out = to_out(attention(q, to_k(text), to_v(text))
                 + Σ_r scale_r · attention(q, to_k_ip_r(image_r), to_v_ip_r(image_r)))

Where the original has one scale for the whole batch, here each row of the UNet's (batch·frames) batch carries its
own: the image tokens of every reference and a scale token travel as extra tokens after the text tokens of that
row's `encoder_hidden_states`, as the original appends its image tokens. So the rows select their own weights
wherever the frames go: the windows of mode "unet" (a window's frames pick their rows), the frame chunks of mode
"temporal" (engine/temporal_windows.py slices encoder_hidden_states with the rows). The unconditional half of
classifier-free guidance gets the original's unconditional image tokens. ControlNets and SparseCtrl are given the
text tokens only, as the original's `CNAttnProcessor` does.

Processors are installed for one generation and removed after; a step where no reference acts runs the attention
processor that was there on the text tokens alone, so weight 0 computes bit for bit what no reference computes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .conditioning import control_active

_CROSS = re.compile(r"^(down_blocks|up_blocks|mid_block)\.(?!.*motion_modules).*attentions\.\d+\..*\.attn2$")
_GROUP = {"down_blocks": 0, "up_blocks": 1, "mid_block": 2}


def cross_attentions(unet) -> list[tuple[str, torch.nn.Module]]:
    """The UNet's spatial cross-attentions in the original IP-Adapter's order (that of SD1.5's
    UNet2DConditionModel.attn_processors: down blocks, up blocks, then the mid block), motion modules left out."""
    found = [(name, m) for name, m in unet.named_modules() if _CROSS.match(name)]
    return sorted(found, key=lambda nm: (_GROUP[nm[0].split(".")[0]], [int(n) for n in re.findall(r"\d+", nm[0])]))


@dataclass
class Reference:
    """One image reference: the IP-Adapter and its image encoder, the image (H, W, 3) uint8, and its schedule."""

    adapter: torch.nn.Module  # engine.ip_adapter.IPAdapter
    encoder: torch.nn.Module  # transformers CLIPVisionModelWithProjection
    image: np.ndarray
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    first: int = 0
    last: int | None = None  # None: the clip's last frame


def clip_pixels(image: np.ndarray, encoder) -> torch.Tensor:
    """(1, 3, S, S) encoder input as the original prepares it: transformers' CLIPImageProcessor (shortest side to S,
    bicubic, centre crop, CLIP mean/std), S the encoder's image size (224 for ViT-H/14)."""
    from transformers import CLIPImageProcessor

    size = encoder.config.image_size
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    pixels = processor(images=[np.asarray(image, dtype=np.uint8)], return_tensors="pt").pixel_values
    param = next(encoder.parameters())
    return pixels.to(param.device, param.dtype)


class ImageReferences:
    """The references of one generation, their image tokens encoded once, before the loop."""

    def __init__(self, references: list[Reference], frames: int, text_tokens: int, device, dtype):
        self.references = references
        self.frames, self.text_tokens = frames, text_tokens
        self.tokens: list[tuple[torch.Tensor, torch.Tensor]] = []  # per reference (cond, uncond), (n, dim)
        for r in references:
            cond, uncond = r.adapter.image_tokens(r.encoder, clip_pixels(r.image, r.encoder))
            self.tokens.append((cond[0].to(device, dtype), uncond[0].to(device, dtype)))
        self.active = [False] * len(references)  # which references act in the current prediction

    def scales(self, step: int, steps: int) -> torch.Tensor:
        """(references, frames) float32: each reference's weight on each frame at this step (0 outside its
        frames and steps)."""
        out = torch.zeros(len(self.references), self.frames)
        for k, r in enumerate(self.references):
            if control_active(step, steps, r.start, r.end):
                last = self.frames - 1 if r.last is None else r.last
                out[k, r.first : last + 1] = r.weight
        return out

    def extend(self, embeds: torch.Tensor, frames: list[int], step: int, steps: int) -> torch.Tensor:
        """The UNet's encoder_hidden_states for rows (batch·len(frames), text tokens, dim) of these frames: each
        row's text tokens, then every reference's image tokens (unconditional ones in the first half under
        classifier-free guidance), then one token holding the row's weight per reference."""
        rows, n = embeds.shape[0], len(frames)
        batch = rows // n
        scales = self.scales(step, steps)[:, frames]  # (R, n)
        self.active = [bool(torch.any(s != 0)) for s in scales]
        parts = [embeds]
        for cond, uncond in self.tokens:
            halves = [uncond, cond] if batch == 2 else [cond]
            parts.append(torch.cat([t.expand(n, -1, -1) for t in halves]))
        scale_token = torch.zeros(rows, 1, embeds.shape[2], dtype=embeds.dtype, device=embeds.device)
        scale_token[:, 0, : len(self.references)] = scales.t().repeat(batch, 1).to(embeds.device, embeds.dtype)
        parts.append(scale_token)
        return torch.cat(parts, dim=1)

    def install(self, unet) -> Installed:
        """Put the reference processors on the UNet's cross-attentions; `Installed.remove()` restores the ones
        that were there."""
        attns = cross_attentions(unet)
        previous = {}
        for r in self.references:
            if len(r.adapter.layers) != len(attns):
                raise ValueError(
                    f"this IP-Adapter has {len(r.adapter.layers)} cross-attention layers, the UNet "
                    f"{len(attns)}: it was made for another base model (SD1.5 IP-Adapters fit SD1.5)"
                )
        for j, (name, attn) in enumerate(attns):
            for r in self.references:
                layer = r.adapter.layers[j]
                if (layer.to_k_ip.out_features, layer.to_k_ip.in_features) != (
                    attn.to_k.out_features,
                    attn.to_k.in_features,
                ):
                    raise ValueError(
                        f"this IP-Adapter's layer {j} is {tuple(layer.to_k_ip.weight.shape)}, the UNet's {name}.to_k "
                        f"{tuple(attn.to_k.weight.shape)}: it was made for another base model"
                    )
            previous[name] = attn.processor
            layers = [r.adapter.layers[j] for r in self.references]
            attn.set_processor(ReferenceAttnProcessor(self, layers, attn.processor))
        return Installed(unet, previous)


class Installed:
    def __init__(self, unet, previous: dict):
        self.unet, self.previous = unet, previous

    def remove(self):
        for name, processor in self.previous.items():
            self.unet.get_submodule(name).set_processor(processor)
        self.previous = {}


def row_scales(encoder_hidden_states: torch.Tensor, references: int) -> torch.Tensor:
    """(rows, references) the weights the scale token of each row carries."""
    return encoder_hidden_states[:, -1, :references]


class ReferenceAttnProcessor:
    """IP-Adapter's decoupled cross-attention with per-row weights (see the module's docstring). A plain object,
    not a module: the IP layers stay the adapter's own and the UNet's state dict does not change."""

    def __init__(self, owner: ImageReferences, layers: list, inner):
        self.owner, self.layers, self.inner = owner, layers, inner

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        text = encoder_hidden_states[:, : self.owner.text_tokens].contiguous()
        if not any(self.owner.active):
            return self.inner(attn, hidden_states, text, attention_mask, temb, **kwargs)
        if attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError("image references need unmasked cross-attention on (rows, tokens, channels)")
        scales = row_scales(encoder_hidden_states, len(self.layers))
        residual = hidden_states
        rows, length, _ = hidden_states.shape
        heads = attn.heads

        def split(x):
            return x.reshape(rows, x.shape[1], heads, -1).transpose(1, 2)

        def attend(q, k, v):
            out = F.scaled_dot_product_attention(q, split(k), split(v))
            return out.transpose(1, 2).reshape(rows, length, -1).to(q.dtype)

        if attn.norm_cross:
            text = attn.norm_encoder_hidden_states(text)
        query = split(attn.to_q(hidden_states))
        out = attend(query, attn.to_k(text), attn.to_v(text))
        at = self.owner.text_tokens
        for k, (layer, (cond, _)) in enumerate(zip(self.layers, self.owner.tokens)):
            image = encoder_hidden_states[:, at : at + cond.shape[0]]
            at += cond.shape[0]
            if self.owner.active[k]:
                ip = attend(query, layer.to_k_ip(image), layer.to_v_ip(image))
                out = out + scales[:, k, None, None] * ip
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor
