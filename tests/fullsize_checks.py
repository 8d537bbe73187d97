"""What tests/test_fullsize.py checks on the full-size placeholder files (tests/fullsize.py writes them): each task
writes the files it needs, loads them through the project's loaders and compares keys and values with the file.

Heavy work runs in a child process (``python -m fullsize_checks TASK JSON``) so that each test's peak memory is
measured on its own and given back to the system when it ends; the child prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
from pathlib import Path

import torch
from fullsize import (
    CONFIGS,
    CONTROLNETS,
    LIGHTNING_FILE,
    MOTION_FILES,
    adapter_lora_targets,
    drop,
    meta_model,
    n_params,
    write_controlnet_folder,
    write_controlnet_original,
    write_domain_adapter,
    write_lightning,
    write_motion_lora,
    write_motion_module,
    write_sd15,
    write_sparsectrl_rgb,
)
from fullsize_pipeline import task_pipeline

from server import loaders as C


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


def task_base(root: Path) -> dict:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
    from safetensors import safe_open

    # Where an artist's portable ComfyUI keeps it: the default config's name sd15 serves it from there
    # (server/model_layouts.py), and it loads as the server loads it, with the shipped config and CLIP tokenizer.
    comfy = root / "ComfyUI_windows_portable"
    written = write_sd15(comfy / "ComfyUI" / "models" / "checkpoints" / "v1-5-pruned-emaonly.safetensors")
    path = Path(written["path"])
    entry = C.ModelConfig.load(None, roots=[comfy]).get("base", "sd15")
    t0 = time.perf_counter()
    parts = C.load_base(entry.source, entry.config, weight_name=entry.weight_name)
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
        "served": {
            "source": str(Path(entry.source).relative_to(root)),
            "config": entry.config,
            "weight_name": entry.weight_name,
        },
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
    drop(path)
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
        drop(path)
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
    drop(path)

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
    drop(path)
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
            drop(path)
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
    drop(path)
    return out


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
