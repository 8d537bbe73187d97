"""Full-size checkpoints with placeholder weights, written in exactly the public layouts and file formats.

Real weights cannot be downloaded here, and tiny models can hide a wrong key map or a wrong config value that only
shows with the real files. Every writer below takes its shapes from diffusers' or transformers' own model classes
built on the ``meta`` device from the configs the project ships (``server/configs/``), renames the keys to the
original layouts with the converters of ``tests/support/original_layout.py`` where the public file is not in the
diffusers layout, and
writes fp16 placeholders (LoRAs fp32, as published) in the public file format:

==============================================  ==================================================================
file                                            layout
==============================================  ==================================================================
``v1-5-pruned-emaonly.safetensors``             SD1.5 single file, original LDM keys: ``model.diffusion_model.*``,
                                                ``first_stage_model.*``, ``cond_stage_model.transformer.*`` and the
                                                DDPM schedule buffers (``betas``, ``alphas_cumprod``, ...)
``mm_sd_v15.ckpt`` / ``mm_sd_v15_v2.ckpt`` /    AnimateDiff motion modules, original keys
``v3_sd15_mm.ckpt``                             (``*.motion_modules.N.temporal_transformer.*``, ``pos_encoder.pe``
                                                on both attention blocks; v2 has the mid-block module), torch.save
``animatediff_lightning_4step_diffusers``       AnimateDiff-Lightning: a MotionAdapter state dict (diffusers keys,
``.safetensors``                                mid block, ``pos_embed.pe``) in one safetensors file
``v2_lora_ZoomIn.ckpt``                         motion LoRA, rank 64, on all 21 v2 modules: ``*.temporal_transformer
                                                .transformer_blocks.0.attention_blocks.{0,1}.processor.{to_q,...}
                                                _lora.{down,up}.weight`` (19.3 M parameters, 77 MB as published)
``v3_sd15_adapter.ckpt``                        AnimateDiff v3 domain adapter: an SD1.5 LoRA on the spatial UNet in
                                                the old diffusers attention-processor format AnimateDiff's
                                                ``load_diffusers_lora`` reads, keys without prefix
                                                (``down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.
                                                to_q_lora.down.weight``), rank 128 fp32: 102.0 MB, the published
                                                file is 102.1 MB
``control_v11*_sd15_*.pth``                     ControlNet v1.1, original ``control_model.*`` keys, torch.save
``control_v11*_sd15_*/``                        the same as a diffusers folder (config.json +
                                                diffusion_pytorch_model.safetensors), as on the hub
``v3_sd15_sparsectrl_rgb.ckpt``                 SparseCtrl RGB: diffusers-style ControlNet keys with original
                                                motion-module keys (``temporal_transformer``), the simplified
                                                ``controlnet_cond_embedding.weight``
==============================================  ==================================================================

Placeholders are a cheap deterministic function of (key, shape): a slice of one fixed random pool (std 0.02) at an
offset taken from the key, so tensors of the same shape differ and a swapped key map shows up as a value mismatch.
The checks that load these files run in a child process each (tests/fullsize_checks.py).
"""

from __future__ import annotations

import json
import math
import re
import sys
import zlib
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from server import loaders as C  # noqa: E402
from tests.support import tiny_models as tiny  # noqa: E402

CONFIGS = C.CONFIGS
FP16 = torch.float16

# The DDPM schedule buffers a CompVis/RunwayML SD1.5 file carries besides the three models (LatentDiffusion's
# registered buffers); loaders must ignore them.
SD_SCHEDULE_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)

CONTROLNETS = {
    "depth": "control_v11f1p_sd15_depth",
    "normalbae": "control_v11p_sd15_normalbae",
    "openpose": "control_v11p_sd15_openpose",
}
MOTION_FILES = {"v1": "mm_sd_v15.ckpt", "v2": "mm_sd_v15_v2.ckpt", "v3": "v3_sd15_mm.ckpt"}
LIGHTNING_FILE = "animatediff_lightning_4step_diffusers.safetensors"
MOTION_LORA_RANK = 64
ADAPTER_LORA_RANK = 128

# ---------------------------------------------------------------------------------------------------------------
# placeholders and shapes
# ---------------------------------------------------------------------------------------------------------------

_POOL_SIZE = 1 << 20
_pool_cache: list[torch.Tensor] = []


def _pool() -> torch.Tensor:
    if not _pool_cache:
        gen = torch.Generator().manual_seed(0)
        _pool_cache.append(torch.randn(_POOL_SIZE, generator=gen) * 0.02)
    return _pool_cache[0]


def placeholder(key: str, shape, dtype=FP16) -> torch.Tensor:
    """A tensor of `shape` whose values depend on `key` (a slice of a fixed random pool at a key-dependent offset)."""
    n = math.prod(shape)
    offset = zlib.crc32(key.encode()) % _POOL_SIZE
    pool = _pool()
    reps = math.ceil((n + offset) / _POOL_SIZE)
    flat = (pool.repeat(reps) if reps > 1 else pool)[offset : offset + n]
    return flat.to(dtype).reshape(tuple(shape)).clone()


def materialize(state: dict, dtype=FP16) -> dict:
    """Meta tensors -> placeholders (floating) or zeros (integer); real tensors are kept."""
    out = {}
    for key, value in state.items():
        if not value.is_meta:
            out[key] = value.contiguous()
        elif value.is_floating_point():
            out[key] = placeholder(key, value.shape, dtype)
        else:
            out[key] = torch.zeros(value.shape, dtype=value.dtype)
    return out


def meta_model(cls, folder, subfolder=None):
    """`cls` built from a config folder on the meta device: the shapes, no memory."""
    config = cls.load_config(str(folder), subfolder=subfolder)
    with torch.device("meta"):
        return cls.from_config(config)


def meta_clip(folder):
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        return CLIPTextModel(CLIPTextConfig.from_pretrained(str(Path(folder) / "text_encoder")))


def key_map(convert, state: dict) -> dict[str, str]:
    """diffusers key -> key in the file, by running the converter on each key alone (keys the converter writes
    only in combination, such as a motion module's position encodings, are left out)."""
    out = {}
    for key, value in state.items():
        converted = convert({key: value})
        names = [k for k in converted if not k.endswith("position_ids")]
        if len(names) == 1:
            out[key] = names[0]
    return out


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def save(state: dict, path: Path, wrap: bool = False) -> int:
    """safetensors for .safetensors, torch.save (optionally wrapped in {"state_dict": ...}) otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state} if wrap else state, str(path))
    return path.stat().st_size


# ---------------------------------------------------------------------------------------------------------------
# writers: each returns {"path", "bytes", "map": diffusers key -> file key (where the file renames)}
# ---------------------------------------------------------------------------------------------------------------


def write_sd15(path: Path) -> dict:
    """SD1.5 single file in the original LDM layout, shapes from the shipped sd15 config."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = CONFIGS / "sd15"
    unet = meta_model(UNet2DConditionModel, folder, "unet")
    vae = meta_model(AutoencoderKL, folder, "vae")
    clip = meta_clip(folder)
    parts = {
        "unet": (unet.state_dict(), lambda sd: tiny.unet_to_ldm(sd, unet.config)),
        "vae": (vae.state_dict(), lambda sd: tiny.vae_to_ldm(sd, vae.config)),
        "text_encoder": (clip.state_dict(), lambda sd: tiny.clip_to_ldm(sd, clip.config.max_position_embeddings)),
    }
    maps, state = {}, {}
    for name, (sd, convert) in parts.items():
        maps[name] = key_map(convert, sd)
        state.update(convert(sd))
    state = materialize(state)
    for name in SD_SCHEDULE_BUFFERS:
        state[name] = torch.linspace(0.001, 0.999, 1000, dtype=torch.float32)
    size = save(state, path)
    return {"path": str(path), "bytes": size, "map": maps}


def _motion_meta(version: str):
    from diffusers import MotionAdapter

    return meta_model(MotionAdapter, CONFIGS / f"motion_adapter_{version}")


def write_motion_module(path: Path, version: str, wrap: bool = False) -> dict:
    """mm_sd_v15.ckpt (v1), mm_sd_v15_v2.ckpt (v2), v3_sd15_mm.ckpt (v3): original keys, torch.save."""
    sd = _motion_meta(version).state_dict()
    mapping = key_map(tiny.motion_to_original, sd)
    size = save(materialize(tiny.motion_to_original(sd)), path, wrap)
    return {"path": str(path), "bytes": size, "map": mapping}


def write_lightning(path: Path) -> dict:
    """AnimateDiff-Lightning's diffusers-format file: `MotionAdapter()` (the v2 structure) keys as they are."""
    sd = _motion_meta("v2").state_dict()
    size = save(materialize(sd), path)
    return {"path": str(path), "bytes": size, "map": {k: k for k in sd}}


def _motion_module_channels(version: str = "v2") -> dict[str, int]:
    """`<block>.motion_modules.N` -> its channel count."""
    out = {}
    for key, value in _motion_meta(version).state_dict().items():
        if m := re.fullmatch(r"(.*\.motion_modules\.\d+)\.proj_in\.weight", key):
            out[m[1]] = value.shape[0]
    return out


def write_motion_lora(path: Path, rank: int = MOTION_LORA_RANK, dtype=torch.float32) -> dict:
    """v2_lora_*.ckpt: rank-64 LoRA on both temporal attentions' q/k/v/out of all 21 v2 motion modules."""
    diffusers_format = {}
    for head, c in _motion_module_channels("v2").items():
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out"):
                key = f"unet.{head}.transformer_blocks.0.{attn}.processor.{proj}_lora"
                diffusers_format[f"{key}.down.weight"] = torch.empty((rank, c), device="meta")
                diffusers_format[f"{key}.up.weight"] = torch.empty((c, rank), device="meta")
    original = tiny.motion_lora_to_original(diffusers_format)
    size = save(materialize(original, dtype), path)
    return {"path": str(path), "bytes": size, "map": key_map(tiny.motion_lora_to_original, diffusers_format)}


def adapter_lora_targets() -> dict[str, tuple[int, int]]:
    """The spatial UNet's attention projections: diffusers module name -> (in_features, out_features)."""
    from diffusers import UNet2DConditionModel

    unet = meta_model(UNet2DConditionModel, CONFIGS / "sd15", "unet")
    pattern = re.compile(
        r"(down_blocks|up_blocks)\.\d+\.attentions\.\d+\.transformer_blocks\.\d+\.attn[12]\."
        r"(to_q|to_k|to_v|to_out\.0)|mid_block\.attentions\.0\.transformer_blocks\.\d+\.attn[12]\."
        r"(to_q|to_k|to_v|to_out\.0)"
    )
    return {
        name: (m.in_features, m.out_features)
        for name, m in unet.named_modules()
        if isinstance(m, torch.nn.Linear) and pattern.fullmatch(name)
    }


def write_domain_adapter(path: Path, rank: int = ADAPTER_LORA_RANK, dtype=torch.float32, wrap: bool = True) -> dict:
    """v3_sd15_adapter.ckpt: the keys AnimateDiff's `load_diffusers_lora` walks from `pipeline.unet` (no prefix,
    `processor.<proj>_lora.{down,up}.weight`, `to_out` for `to_out.0`). Written wrapped in {"state_dict": ...} by
    default, the form AnimateDiff's loader unwraps first; whether the published file is wrapped is not known here,
    and the server's reader takes both."""
    state, mapping = {}, {}
    for name, (fan_in, fan_out) in adapter_lora_targets().items():
        key = re.sub(r"\.(to_q|to_k|to_v|to_out)(\.0)?$", r".processor.\1_lora", name)
        state[f"{key}.down.weight"] = placeholder(f"{key}.down.weight", (rank, fan_in), dtype)
        state[f"{key}.up.weight"] = placeholder(f"{key}.up.weight", (fan_out, rank), dtype)
        mapping[name] = key
    size = save(state, path, wrap)
    return {"path": str(path), "bytes": size, "map": mapping}


def _controlnet_meta():
    from diffusers import ControlNetModel

    return meta_model(ControlNetModel, CONFIGS / "controlnet_sd15")


def write_controlnet_original(path: Path) -> dict:
    """control_v11*_sd15_*.pth: `control_model.*` keys (the ControlLDM submodule), torch.save."""
    model = _controlnet_meta()
    sd = model.state_dict()

    def convert(part):
        return tiny.controlnet_to_ldm(part, model.config)

    mapping = key_map(convert, sd)
    size = save(materialize(convert(sd)), path)
    return {"path": str(path), "bytes": size, "map": mapping}


def write_controlnet_folder(folder: Path, name: str) -> dict:
    """lllyasviel/control_v11*_sd15_* as on the hub: config.json + diffusion_pytorch_model.safetensors."""
    model = _controlnet_meta()
    config = json.loads((CONFIGS / "controlnet_sd15" / "config.json").read_text())
    config.update(_diffusers_version="0.16.0.dev0", _name_or_path=f"lllyasviel/{name}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    sd = model.state_dict()
    size = save(materialize(sd), folder / "diffusion_pytorch_model.safetensors")
    return {"path": str(folder), "bytes": size, "map": {k: k for k in sd}}


def write_sparsectrl_rgb(path: Path) -> dict:
    """v3_sd15_sparsectrl_rgb.ckpt: ControlNet keys as in diffusers, motion modules in the original layout. Only
    attention block 0 carries `pos_encoder.pe` (diffusers' conversion script loads the file strictly and maps only
    `attn1.pos_encoder` to the block's `pos_embed`)."""
    from diffusers import SparseControlNetModel

    sd = meta_model(SparseControlNetModel, CONFIGS / "sparsectrl_rgb").state_dict()
    original = {
        k: v for k, v in tiny.motion_to_original(sd).items() if not k.endswith("attention_blocks.1.pos_encoder.pe")
    }
    size = save(materialize(original), path)
    return {"path": str(path), "bytes": size, "map": key_map(tiny.motion_to_original, sd)}


def drop(path: Path):
    """Remove a written file or folder (the files are gigabytes: each is dropped as soon as it has been used)."""
    if path.is_dir():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()
