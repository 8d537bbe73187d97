"""IP-Adapter checkpoints (h94/IP-Adapter's SD1.5 files) and their CLIP vision image encoders.

IP-Adapter files, in the public layouts:
- `.bin` (a torch checkpoint, read weights-only): `{"image_proj": {...}, "ip_adapter": {...}}`;
- `.safetensors`: the same tensors flat, keys prefixed `image_proj.` and `ip_adapter.`.
`ip_adapter` holds `N.to_k_ip.weight` / `N.to_v_ip.weight` for the UNet's cross-attentions (N = 1, 3, … 31 on
SD1.5: the original numbers all attention processors and only the cross-attentions carry weights). `image_proj`
is `proj.*` + `norm.*` for the plain adapter, the Resampler (`latents`, `proj_in`, `layers.N.*`, `proj_out`,
`norm_out`) for the plus ones: which one is told from the keys.

Image encoders: a transformers `CLIPVisionModelWithProjection` folder (h94/IP-Adapter `models/image_encoder`:
config.json + model.safetensors or pytorch_model.bin), or one weights file in that key layout (`vision_model.*`,
`visual_projection.weight`; ComfyUI's `clip_vision/*.safetensors`) with the ViT-H/14 config shipped in
`server/configs/clip_vision_vit_h14` unless the entry names another `config`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .files import CheckpointError, _torch_load, read_state_dict
from .single_file import cast
from .sources import CONFIGS, config_folder, resolve_source

SECTIONS = ("image_proj", "ip_adapter")
_LAYER_KEY = re.compile(r"^(\d+)\.(to_k_ip|to_v_ip)\.weight$")
_RESAMPLER_LAYER = re.compile(r"^layers\.(\d+)\.")
ENCODER_CONFIG = CONFIGS / "clip_vision_vit_h14"
ENCODER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
FF_MULT = 4


def ip_adapter_state_dicts(source, weight_name=None) -> tuple[dict, dict]:
    """(image_proj, ip_adapter) state dicts of an IP-Adapter file, as stored (CPU)."""
    import torch

    kind, where = resolve_source(source, weight_name)
    if kind != "file":
        raise CheckpointError(
            f"{where}: expected an IP-Adapter file (.bin or .safetensors), got a folder or hub repo; name the file "
            f"(e.g. h94/IP-Adapter/models/ip-adapter_sd15.safetensors)"
        )
    if where.suffix.lower() == ".safetensors":
        flat = read_state_dict(where)
        data = {s: {k[len(s) + 1 :]: v for k, v in flat.items() if k.startswith(s + ".")} for s in SECTIONS}
        stray = sorted(k for k in flat if not k.startswith(tuple(s + "." for s in SECTIONS)))
        if stray:
            raise CheckpointError(f"{where}: keys outside image_proj./ip_adapter. (e.g. {', '.join(stray[:3])})")
    else:
        if not where.is_file():
            raise CheckpointError(f"{where}: file not found")
        try:
            data = _torch_load(where)
        except Exception as e:
            raise CheckpointError(
                f"{where}: cannot be read as a weights-only torch checkpoint ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''})"
            ) from e
    if not isinstance(data, dict) or any(not isinstance(data.get(s), dict) or not data[s] for s in SECTIONS):
        found = sorted(map(str, data))[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{where}: expected an IP-Adapter with {' and '.join(SECTIONS)}; found {found}")
    return tuple({k: v for k, v in data[s].items() if isinstance(v, torch.Tensor)} for s in SECTIONS)


def _image_proj(sd: dict, context_dim: int):
    """The plain projection or the Resampler, by the keys, on the meta device; and its token count."""
    from ..engine.ip_adapter import HEAD_DIM, PLAIN, PLUS, ImageProjection, Resampler

    if "proj.weight" in sd:
        out_features, embed_dim = sd["proj.weight"].shape
        if out_features % context_dim:
            raise ValueError(f"proj.weight is {tuple(sd['proj.weight'].shape)}, not tokens × {context_dim} rows")
        tokens = out_features // context_dim
        return PLAIN, ImageProjection(embed_dim, context_dim, tokens), tokens
    if "latents" in sd:
        _, tokens, dim = sd["latents"].shape
        depth = 1 + max((int(m[1]) for k in sd if (m := _RESAMPLER_LAYER.match(k))), default=-1)
        inner = sd["layers.0.0.to_q.weight"].shape[0]
        if inner % HEAD_DIM:
            raise ValueError(f"layers.0.0.to_q.weight is {inner} wide, not a multiple of the heads' {HEAD_DIM}")
        embed_dim = sd["proj_in.weight"].shape[1]
        output_dim = sd["proj_out.weight"].shape[0]
        mult = sd["layers.0.1.1.weight"].shape[0] // dim
        return PLUS, Resampler(dim, depth, inner // HEAD_DIM, tokens, embed_dim, output_dim, mult), tokens
    raise ValueError("image_proj has neither proj.weight (plain IP-Adapter) nor latents (plus: the Resampler)")


def build_ip_adapter(image_proj: dict, ip_adapter: dict, dtype=None):
    """An engine.ip_adapter.IPAdapter holding exactly these tensors (strict: every key used, none missing)."""
    import torch

    from ..engine.ip_adapter import IPAdapter, IPLayer

    ids = sorted({int(m[1]) for k in ip_adapter if (m := _LAYER_KEY.match(k))})
    stray = sorted(k for k in ip_adapter if not _LAYER_KEY.match(k))
    if stray or not ids:
        raise ValueError(
            f"ip_adapter keys must be N.to_k_ip.weight / N.to_v_ip.weight; found {(stray or ['none'])[:3]}"
        )
    context_dim = ip_adapter[f"{ids[0]}.to_k_ip.weight"].shape[1]
    with torch.device("meta"):
        variant, proj, tokens = _image_proj(image_proj, context_dim)
        layers = [IPLayer(context_dim, ip_adapter[f"{i}.to_k_ip.weight"].shape[0]) for i in ids]
        model = IPAdapter(variant, proj, layers, tokens)
    state = {f"image_proj.{k}": v for k, v in image_proj.items()}
    for j, i in enumerate(ids):
        for name in ("to_k_ip", "to_v_ip"):
            state[f"layers.{j}.{name}.weight"] = ip_adapter.get(f"{i}.{name}.weight")
    missing = [k for k, v in state.items() if v is None]
    if missing:
        raise ValueError(f"ip_adapter lacks {missing[0].split('.', 1)[1]} (layer {missing[0].split('.')[1]})")
    model.load_state_dict(cast(state, dtype), strict=True, assign=True)
    return model


def load_ip_adapter(source, config=None, weight_name=None, dtype=None):
    """An IP-Adapter (engine/ip_adapter.py) in `dtype` (float32 when None) on the CPU. Every tensor of the file is
    used; a key or shape the layout does not have is a CheckpointError naming the file."""
    image_proj, ip_adapter = ip_adapter_state_dicts(source, weight_name)
    try:
        return build_ip_adapter(image_proj, ip_adapter, dtype)
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{source}: not the layout of an SD1.5 IP-Adapter (plain or plus): {str(e).splitlines()[0]}"
        ) from e


def _encoder_files(source, config, weight_name) -> tuple[Path, Path]:
    """(config folder, weights file) of an image encoder source."""
    kind, where = resolve_source(source, weight_name)
    if kind == "hub":
        raise CheckpointError(
            f"{where}: name the image encoder's weights file inside the hub repo (e.g. "
            f"h94/IP-Adapter/models/image_encoder/model.safetensors)"
        )
    if kind == "dir":
        weights = next((where / f for f in ENCODER_WEIGHTS if (where / f).is_file()), None)
        if weights is None:
            raise CheckpointError(f"{where}: no {' or '.join(ENCODER_WEIGHTS)} in the image encoder folder")
        folder = config_folder(config) or where
    else:
        weights, folder = (
            where,
            config_folder(config) or (where.parent if (where.parent / "config.json").is_file() else ENCODER_CONFIG),
        )
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: no config.json for the image encoder")
    return folder, weights


def load_image_encoder(source, config=None, weight_name=None, dtype=None):
    """A transformers CLIPVisionModelWithProjection in `dtype` (float32 when None) on the CPU, built on the meta
    device and given the file's tensors (no random initialisation, no float32 detour)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder, weights = _encoder_files(source, config, weight_name)
    try:
        cfg = CLIPVisionConfig.from_dict(json.loads((folder / "config.json").read_text()))
    except Exception as e:
        raise CheckpointError(f"{folder / 'config.json'}: not a CLIP vision config ({type(e).__name__}: {e})") from e
    sd = read_state_dict(weights)
    sd.pop("vision_model.embeddings.position_ids", None)  # a buffer older transformers saved
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(cfg)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: not a CLIP vision encoder of {folder / 'config.json'} in the transformers layout "
            f"(vision_model.*, visual_projection.weight): {len(missing)} missing (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    for key in list(sd):  # cast in place, one tensor at a time: never the whole file twice in memory
        sd[key] = cast({key: sd[key]}, dtype)[key]
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"{weights}: shapes do not match {folder / 'config.json'}: {str(e)[:300]}") from e
    model.vision_model.embeddings.register_buffer(
        "position_ids", torch.arange((cfg.image_size // cfg.patch_size) ** 2 + 1).expand((1, -1)), persistent=False
    )
    return model.eval().requires_grad_(False)
