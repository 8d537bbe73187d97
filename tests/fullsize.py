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

Heavy work runs in a child process (``python -m fullsize TASK JSON``) so that each test's peak memory is measured
on its own and given back to the system when it ends; the child prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import json
import math
import re
import resource
import sys
import time
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


# ---------------------------------------------------------------------------------------------------------------
# checks (run in the child process)
# ---------------------------------------------------------------------------------------------------------------


def _lazy_file(path: Path):
    """key -> tensor getter without loading the whole file (safetensors header / torch.load mmap)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        handle = safe_open(str(path), framework="pt")
        return set(handle.keys()), handle.get_tensor
    data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    if isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    return set(data), data.__getitem__


def compare_values(model, path: Path, mapping: dict[str, str]) -> dict:
    """Every tensor of `model` named in `mapping` equals the file's tensor under the mapped name (fp16 -> fp32 is
    exact). Returns counts and the first mismatches."""
    _, get = _lazy_file(path)
    state = model.state_dict()
    bad, checked = [], 0
    for key, file_key in mapping.items():
        if key not in state:
            bad.append(f"{key}: not in the model")
            continue
        expected = get(file_key).to(state[key].dtype).reshape(state[key].shape)
        checked += 1
        if not torch.equal(state[key], expected):
            bad.append(f"{key} != file {file_key}")
    unchecked = sorted({n for n, _ in model.named_parameters()} - set(mapping))
    return {
        "checked": checked,
        "mismatched": bad[:5],
        "n_mismatched": len(bad),
        "unchecked_params": unchecked[:5],
        "n_unchecked_params": len(unchecked),
    }


def key_sets(model, converted_keys) -> dict:
    """Converted file keys against the model: parameters missing, buffers missing, keys with no place."""
    params = {n for n, _ in model.named_parameters()}
    names = set(model.state_dict())
    converted = set(converted_keys)
    return {
        "missing_params": sorted(params - converted),
        "missing_buffers": sorted(names - params - converted),
        "unused": sorted(converted - names),
    }


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _drop(path: Path):
    if path.is_dir():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()


def task_base(root: Path) -> dict:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
    from safetensors import safe_open

    written = write_sd15(root / "v1-5-pruned-emaonly.safetensors")
    path = Path(written["path"])
    t0 = time.perf_counter()
    parts = C.load_base(path)  # shipped config and CLIP tokenizer
    load_s = time.perf_counter() - t0
    with safe_open(str(path), framework="pt") as f:
        file_keys = set(f.keys())
    meta = {k: torch.empty(0, device="meta") for k in file_keys}
    unet_keys = {k: v for k, v in meta.items() if k.startswith("model.diffusion_model.")}
    vae_keys = {k: v for k, v in meta.items() if k.startswith("first_stage_model.")}
    clip_prefix = "cond_stage_model.transformer."
    clip_keys = {k[len(clip_prefix) :] for k in file_keys if k.startswith(clip_prefix)}
    clip_names = set(parts["text_encoder"].state_dict())  # current transformers names them without "text_model."
    clip_keys = {k if k in clip_names else k.removeprefix("text_model.") for k in clip_keys}
    out = {
        "bytes": written["bytes"],
        "load_s": round(load_s, 1),
        "prefixes": sorted({k.split(".")[0] for k in file_keys if "." in k}),
        "other_keys": sorted(k for k in file_keys if "." not in k),
        "params": {name: n_params(parts[name]) for name in ("unet", "vae", "text_encoder")},
        "keys": {
            "unet": key_sets(parts["unet"], convert_ldm_unet_checkpoint(unet_keys, dict(parts["unet"].config))),
            "vae": key_sets(parts["vae"], convert_ldm_vae_checkpoint(vae_keys, dict(parts["vae"].config))),
            "text_encoder": key_sets(parts["text_encoder"], clip_keys - {"embeddings.position_ids"}),
        },
        "values": {
            name: compare_values(parts[name], path, written["map"][name]) for name in ("unet", "vae", "text_encoder")
        },
        "dtypes": sorted({str(p.dtype) for name in ("unet", "vae", "text_encoder") for p in parts[name].parameters()}),
        "tokenizer": [type(parts["tokenizer"]).__name__, len(parts["tokenizer"])],
        "scheduler": type(parts["scheduler"]).__name__,
        "unet_config": {
            k: parts["unet"].config[k] for k in ("cross_attention_dim", "attention_head_dim", "sample_size")
        },
    }
    del parts
    _drop(path)
    return out


def task_motion(root: Path) -> dict:
    """v1, v2, v3 originals and the Lightning diffusers-format file, one after the other."""
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    out = {}
    jobs = [(v, MOTION_FILES[v], v == "v3") for v in ("v1", "v2", "v3")] + [("lightning", LIGHTNING_FILE, False)]
    for name, filename, wrap in jobs:
        if name == "lightning":
            written = write_lightning(root / "lightning" / filename)
        else:
            written = write_motion_module(root / filename, name, wrap=wrap)
        path = Path(written["path"])
        file_keys, get = _lazy_file(path)
        info = C.motion_adapter_info(path)
        t0 = time.perf_counter()
        if name == "lightning":  # as configured in default_models.toml: a folder/hub repo + weight_name
            adapter = C.load_motion_adapter(path.parent, weight_name=filename)
        else:
            adapter = C.load_motion_adapter(path)
        converted = convert_animatediff_checkpoint_to_diffusers(dict.fromkeys(file_keys))
        out[name] = {
            "bytes": written["bytes"],
            "load_s": round(time.perf_counter() - t0, 1),
            "info": info,
            "params": n_params(adapter),
            "mid_block": adapter.mid_block is not None,
            "max_seq": adapter.config.motion_max_seq_length,
            "modules": len(
                {
                    k.split(".temporal_transformer.")[0]
                    if ".temporal_transformer." in k
                    else re.sub(r"(motion_modules\.\d+)\..*", r"\1", k)
                    for k in file_keys
                }
            ),
            "pe": sorted(
                {tuple(get(k).shape[:2]) for k in file_keys if k.endswith(("pos_encoder.pe", "pos_embed.pe"))}
            ),
            "keys": key_sets(adapter, converted),
            "dropped": sorted(
                {
                    ".".join(k.split(".")[-2:])
                    for k in file_keys
                    if not convert_animatediff_checkpoint_to_diffusers({k: None})
                }
            ),
            "values": compare_values(adapter, path, written["map"]),
        }
        del adapter
        _drop(path)
    return out


def task_loras(root: Path) -> dict:
    """The v2 motion LoRA and the v3 domain adapter: read through the server's loaders, and every pair lands on a
    projection of the right shape in the model it is meant for (checked on the meta device)."""
    from diffusers import MotionAdapter, UNet2DConditionModel
    from diffusers.models import UNetMotionModel

    out = {}
    with torch.device("meta"):
        unet2d = UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(str(CONFIGS / "sd15"), subfolder="unet")
        )
        adapter = MotionAdapter.from_config(MotionAdapter.load_config(str(CONFIGS / "motion_adapter_v2")))
        motion_unet = UNetMotionModel.from_unet2d(unet2d, adapter, load_weights=False)
    modules = dict(motion_unet.named_modules())

    def landing(sd: dict, prefix: str) -> dict:
        """diffusers attention-processor LoRA keys -> target modules; returns what does not fit."""
        problems, pairs = [], 0
        for key, down in sd.items():
            if not key.endswith(".down.weight"):
                continue
            pairs += 1
            up = sd[key.replace(".down.", ".up.")]
            target = re.sub(
                r"\.processor\.(to_q|to_k|to_v|to_out)_lora\.down\.weight$",
                lambda m: "." + m[1] + (".0" if m[1] == "to_out" else ""),
                key,
            )
            target = target.removeprefix(prefix)
            module = modules.get(target)
            if not isinstance(module, torch.nn.Linear):
                problems.append(f"{key}: no Linear {target}")
            elif down.shape != (down.shape[0], module.in_features) or up.shape != (module.out_features, down.shape[0]):
                problems.append(f"{key}: shapes {tuple(down.shape)}/{tuple(up.shape)} vs {module}")
        return {"pairs": pairs, "problems": problems[:5]}

    written = write_motion_lora(root / "v2_lora_ZoomIn.ckpt")
    path = Path(written["path"])
    raw_keys, _ = _lazy_file(path)
    sd = C.motion_lora_state_dict(path)
    out["motion_lora"] = {
        "bytes": written["bytes"],
        "tensors": len(sd),
        "params": sum(v.numel() for v in sd.values()),
        "rank": sorted({v.shape[0] for k, v in sd.items() if k.endswith(".down.weight")}),
        "raw_all_original": all(
            ".temporal_transformer.transformer_blocks.0.attention_blocks." in k and "processor." in k and "_lora." in k
            for k in raw_keys
        ),
        "modules": len({k.split(".transformer_blocks.")[0] for k in sd}),
        "landing": landing(sd, "unet."),
    }
    _drop(path)

    written = write_domain_adapter(root / "v3_sd15_adapter.ckpt")
    path = Path(written["path"])
    raw_keys, _ = _lazy_file(path)
    source = C.image_lora_source(path)
    out["domain_adapter"] = {
        "bytes": written["bytes"],
        "type": type(source).__name__,
        "tensors": len(source),
        "params": sum(v.numel() for v in source.values()),
        "raw_unprefixed": all(k.startswith(("down_blocks.", "mid_block.", "up_blocks.")) for k in raw_keys),
        "prefixes": sorted({k.split(".")[0] for k in source}),
        "landing": landing(source, "unet."),
        "targets": len(adapter_lora_targets()),
    }
    _drop(path)
    return out


def task_controlnets(root: Path) -> dict:
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    out = {}
    for name, stem in CONTROLNETS.items():
        for form in ("original", "folder"):
            if form == "original":
                written = write_controlnet_original(root / f"{stem}.pth")
            else:
                written = write_controlnet_folder(root / stem, stem)
            path = Path(written["path"])
            t0 = time.perf_counter()
            model = C.load_controlnet(path)
            load_s = time.perf_counter() - t0
            if form == "original":
                file_keys, _ = _lazy_file(path)
                converted = convert_controlnet_checkpoint(dict.fromkeys(file_keys), dict(model.config))
                values_from = path
            else:
                values_from = path / "diffusion_pytorch_model.safetensors"
                file_keys, _ = _lazy_file(values_from)
                converted = file_keys
            out[f"{name}-{form}"] = {
                "bytes": written["bytes"],
                "load_s": round(load_s, 1),
                "params": n_params(model),
                "all_control_model": all(k.startswith("control_model.") for k in file_keys)
                if form == "original"
                else None,
                "keys": key_sets(model, converted),
                "values": compare_values(model, values_from, written["map"]),
            }
            del model
            _drop(path)
    return out


def task_sparsectrl(root: Path) -> dict:
    from diffusers import SparseControlNetModel
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    written = write_sparsectrl_rgb(root / "v3_sd15_sparsectrl_rgb.ckpt")
    path = Path(written["path"])
    file_keys, get = _lazy_file(path)
    model = C.load_sparsectrl(path)
    out = {
        "bytes": written["bytes"],
        "params": n_params(model),
        "config_params": n_params(meta_model(SparseControlNetModel, CONFIGS / "sparsectrl_rgb")),
        "cond_embedding": list(get("controlnet_cond_embedding.weight").shape),
        "simplified": model.config.use_simplified_condition_embedding,
        "conditioning_channels": model.config.conditioning_channels,
        "keys": key_sets(model, convert_animatediff_checkpoint_to_diffusers(dict.fromkeys(file_keys))),
        "values": compare_values(model, path, written["map"]),
    }
    del model
    _drop(path)
    return out


def task_pipeline(
    root: Path,
    variant: str,
    dtype: str = "bfloat16",
    device: str = "cpu",
    frames: int = 2,
    size: int = 64,
    steps: int = 1,
) -> dict:
    """The full-size pipeline through the server's ModelStore (a models.toml naming the public files), one
    denoising step at 64x64 with 2 frames by default (a GPU bench passes device="cuda", dtype="float16", frames=16,
    size=512, steps=25). v2: SD1.5 + mm_sd_v15_v2 + ControlNet depth (.pth) + v2_lora_ZoomIn;
    v3: SD1.5 + v3_sd15_mm + SparseCtrl RGB + ControlNet openpose (hub folder) + the v3 domain adapter LoRA."""
    from server.engine.conditioning import Control, Keyframes
    from server.engine.schedulers import make_scheduler
    from server.engine.store import ModelStore
    from server.loaders import ModelConfig

    times = {}
    t0 = time.perf_counter()
    files = [write_sd15(root / "v1-5-pruned-emaonly.safetensors")]
    toml = ["[base.sd15]", 'source = "v1-5-pruned-emaonly.safetensors"']
    if variant == "v2":
        files += [
            write_motion_module(root / MOTION_FILES["v2"], "v2"),
            write_controlnet_original(root / "control_v11f1p_sd15_depth.pth"),
            write_motion_lora(root / "v2_lora_ZoomIn.ckpt"),
        ]
        toml += [
            "[motion_module.v2]",
            'source = "mm_sd_v15_v2.ckpt"',
            "[controlnet.depth]",
            'source = "control_v11f1p_sd15_depth.pth"',
            "[motion_lora.zoom_in]",
            'source = "v2_lora_ZoomIn.ckpt"',
        ]
        motion, controlnet, loras = "v2", "depth", [("motion_lora", "zoom_in", 1.0)]
    else:
        files += [
            write_motion_module(root / MOTION_FILES["v3"], "v3"),
            write_sparsectrl_rgb(root / "v3_sd15_sparsectrl_rgb.ckpt"),
            write_controlnet_folder(root / "control_v11p_sd15_openpose", "control_v11p_sd15_openpose"),
            write_domain_adapter(root / "v3_sd15_adapter.ckpt"),
        ]
        toml += [
            "[motion_module.v3]",
            'source = "v3_sd15_mm.ckpt"',
            "[controlnet.openpose]",
            'source = "control_v11p_sd15_openpose"',
            "[sparsectrl.rgb]",
            'source = "v3_sd15_sparsectrl_rgb.ckpt"',
            "[lora.v3_adapter]",
            'source = "v3_sd15_adapter.ckpt"',
        ]
        motion, controlnet, loras = "v3", "openpose", [("lora", "v3_adapter", 1.0)]
    (root / "models.toml").write_text("\n".join(toml) + "\n")
    disk = sum(f["bytes"] for f in files)
    times["write_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    store = ModelStore(ModelConfig.load(root / "models.toml"), device=device, dtype=dtype)
    pipe = store.pipeline("sd15", motion)  # built in the store's dtype, the motion UNet sharing its weights
    store.set_loras(pipe, loras)
    guides = torch.rand(frames, 3, size, size, generator=torch.Generator().manual_seed(1))
    control = Control(store.controlnet(controlnet), guides)
    keyframes = None
    if variant == "v3":
        keyframes = Keyframes(store.sparsectrl("rgb"), torch.rand(1, 3, size, size), indices=[0])
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    times["load_s"] = time.perf_counter() - t0
    for f in files:  # everything is in memory now
        _drop(Path(f["path"]))

    adapter_name = f"{loras[0][0]}__{loras[0][1]}"
    wrapped = [n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and adapter_name in m.lora_A]
    wrapped_te = [n for n, m in pipe.text_encoder.named_modules() if hasattr(m, "lora_A")]

    previews = []
    t0 = time.perf_counter()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    video = pipe.generate(
        prompt="a wooden marionette dancing",
        negative_prompt="blurry",
        num_frames=frames,
        height=size,
        width=size,
        steps=steps,
        guidance=7.5,
        generator=torch.Generator().manual_seed(0),
        controls=[control],
        keyframes=keyframes,
        on_step=lambda i, n, x0: previews.append((i, n, x0.float())),
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    times["generate_s"] = time.perf_counter() - t0
    return {
        "variant": variant,
        "disk_bytes": disk,
        "loads": store.loads,
        "frames": [list(video.shape), str(video.dtype)],
        "gpu_peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None,
        "steps": [(i, n) for i, n, _ in previews],
        "x0_finite": all(bool(torch.isfinite(x0).all()) for _, _, x0 in previews),
        "x0_shape": list(previews[-1][2].shape) if previews else None,
        "unet": [
            type(pipe.unet).__name__,
            sum(p.numel() for n, p in pipe.unet.named_parameters() if "lora_" not in n),
            str(pipe.unet.dtype),
        ],
        "lora_params": sum(p.numel() for n, p in pipe.unet.named_parameters() if "lora_" in n),
        "motion_modules": len([n for n, _ in pipe.unet.named_modules() if re.fullmatch(r".*motion_modules\.\d+", n)]),
        "lora_wrapped": len(wrapped),
        "lora_wrapped_motion": len([n for n in wrapped if "motion_modules" in n]),
        "lora_wrapped_text_encoder": len(wrapped_te),
        "controlnet_dtype": str(control.model.dtype),
        "times": {k: round(v, 1) for k, v in times.items()},
    }


TASKS = {
    "base": task_base,
    "motion": task_motion,
    "loras": task_loras,
    "controlnets": task_controlnets,
    "sparsectrl": task_sparsectrl,
    "pipeline": task_pipeline,
}


def main(argv: list[str]) -> None:
    task, kwargs = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    root = Path(kwargs.pop("root"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with torch.no_grad():
        result = TASKS[task](root, **kwargs)
    result["max_rss_gb"] = round(_rss_gb(), 2)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
