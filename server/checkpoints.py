"""Loading every model file format the server accepts. No bpy, no FastAPI.

A *source* is one of:

- a hub id ``org/name``: loaded with ``from_pretrained`` through the standard Hugging Face cache (works offline
  once cached, e.g. with ``HF_HUB_OFFLINE=1``);
- a hub file ``org/name/path/to/file.safetensors`` (not an existing local path): fetched with ``hf_hub_download``
  (cache first) and then read as a single file;
- a local diffusers folder (``model_index.json`` for a pipeline, ``config.json`` for a model);
- a local single file: ``.safetensors``, or ``.ckpt``/``.pt``/``.pth``/``.bin`` read ONLY with
  ``torch.load(path, map_location="cpu", weights_only=True)`` (a top-level ``state_dict`` is unwrapped).

Single files in an original (non-diffusers) layout need a diffusers config. ``config`` may name a local diffusers
config folder (or a hub id); when it is None the configs shipped in ``server/configs/`` for the public models are
used, so local single files load with no network at all.

Every loader returns objects on the CPU in float32; the caller moves and casts them. Anything that cannot be loaded
(a missing file, an unreadable or corrupt one, a file of the wrong kind, a file that does not match its config)
raises :class:`CheckpointError`, whose message names the file and what was expected.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

CONFIGS = Path(__file__).resolve().parent / "configs"

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
_HUB_FILE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)/(.+\.(?:safetensors|ckpt|pt|pth|bin))")

# Where a single-file SD1.5 checkpoint can find a CLIP tokenizer when its config folder has none.
TOKENIZER_REPOS = (("openai/clip-vit-large-patch14", ""), ("stable-diffusion-v1-5/stable-diffusion-v1-5", "tokenizer"),
                   ("runwayml/stable-diffusion-v1-5", "tokenizer"))

MOTION_VERSIONS = ("v1", "v2", "v3")

_KIND_TEXT = {
    "sd_ldm": "a Stable Diffusion checkpoint in the original LDM layout (model.diffusion_model.*)",
    "motion_module": "an AnimateDiff motion module in the original layout (motion_modules.*.temporal_transformer.*)",
    "motion_module_diffusers": "an AnimateDiff motion module in the diffusers MotionAdapter layout",
    "motion_lora": "an AnimateDiff motion LoRA in the original layout (*.temporal_transformer.*_lora.*)",
    "motion_lora_diffusers": "an AnimateDiff motion LoRA in the diffusers layout (unet.*.motion_modules.*_lora.*)",
    "image_lora": "an image LoRA (kohya lora_unet_*/lora_te_* or diffusers)",
    "sparsectrl": "a SparseCtrl model (controlnet_cond_embedding.* with motion modules)",
    "controlnet_ldm": "a ControlNet in the original layout (control_model.*)",
    "controlnet_diffusers": "a ControlNet in the diffusers layout",
    "unet_diffusers": "a diffusers UNet",
    "unet_motion_diffusers": "a diffusers UNetMotionModel",
    "unknown": "no model layout this server knows",
}


class CheckpointError(Exception):
    """A model file or folder that cannot be loaded; the message names it and says what was expected."""


# ---------------------------------------------------------------------------------------------------------------
# reading files
# ---------------------------------------------------------------------------------------------------------------

def read_state_dict(path) -> dict:
    """All tensors of one weights file, on the CPU. `.safetensors` through safetensors; `.ckpt`/`.pt`/`.pth`/`.bin`
    through `torch.load(..., weights_only=True)` only, with a top-level "state_dict" (or a lone nested dict of
    tensors) unwrapped and non-tensor entries (step counters, configs) dropped."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found" + (" (it is a folder)" if path.is_dir() else ""))
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable .safetensors file ({type(e).__name__}: {e})") from e
    if suffix not in WEIGHT_SUFFIXES:
        raise CheckpointError(f"{path}: unsupported file type {suffix or '(none)'}; expected one of "
                              f"{', '.join(WEIGHT_SUFFIXES)}")
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path}: cannot be read as a weights-only torch checkpoint; it is corrupt, truncated, or holds "
            f"pickled objects other than tensors ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from e
    while isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if isinstance(data, dict) and not any(isinstance(v, torch.Tensor) for v in data.values()):
        nested = [v for v in data.values() if isinstance(v, dict)]
        if len(nested) == 1:
            data = nested[0]
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: holds a {type(data).__name__}, expected a dict of tensors")
    tensors = {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors")
    return tensors


def _file_keys_and_shapes(path: Path) -> dict[str, tuple]:
    """Key -> shape without loading the tensors where the format allows it (safetensors header)."""
    if path.suffix.lower() == ".safetensors" and path.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable .safetensors file ({type(e).__name__}: {e})") from e
    # A pickle has no header: read it once per file version, not on every /plan and job submission.
    if not path.is_file():
        read_state_dict(path)  # raises the CheckpointError that names the missing file
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _shapes_cache:
        _shapes_cache[key] = {k: tuple(v.shape) for k, v in read_state_dict(path).items()}
    return _shapes_cache[key]


_shapes_cache: dict[tuple, dict[str, tuple]] = {}


def classify(keys) -> str:
    """What a state dict holds, from its key names: one of the keys of `_KIND_TEXT`."""
    keys = list(keys)

    def has(s):
        return any(s in k for k in keys)

    def starts(s):
        return any(k.startswith(s) for k in keys)

    if starts("lora_unet_") or starts("lora_te"):
        return "image_lora"
    if has("lora"):
        if has(".motion_modules."):
            return "motion_lora" if has(".temporal_transformer.") else "motion_lora_diffusers"
        return "image_lora"
    if starts("controlnet_cond_embedding") and has(".motion_modules."):
        return "sparsectrl"
    if starts("control_model.") or starts("input_hint_block."):
        return "controlnet_ldm"
    if starts("controlnet_cond_embedding.") and starts("controlnet_down_blocks."):
        return "controlnet_diffusers"
    if starts("model.diffusion_model."):
        return "sd_ldm"
    if has(".motion_modules."):
        if has(".resnets."):
            return "unet_motion_diffusers"
        return "motion_module" if has(".temporal_transformer.") else "motion_module_diffusers"
    if starts("down_blocks.") and has(".resnets."):
        return "unet_diffusers"
    return "unknown"


def _expect(path, kind: str, allowed: tuple[str, ...], what: str) -> None:
    if kind not in allowed:
        raise CheckpointError(f"{path}: expected {what}, but the file holds {_KIND_TEXT[kind]}")


# ---------------------------------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------------------------------

def _hub_download(repo: str, filename: str, source) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:
        pass
    try:
        return Path(hf_hub_download(repo, filename))
    except Exception as e:
        raise CheckpointError(f"{source}: {filename} of hub repo {repo} is neither in the local Hugging Face cache "
                              f"nor downloadable ({type(e).__name__}: {e})") from e


def _resolve(source, weight_name: str | None = None) -> tuple[str, object]:
    """("file", Path) | ("dir", Path) | ("hub", "org/name"). With `weight_name`, the file of that name inside the
    folder or hub repo `source` (e.g. AnimateDiff-Lightning's one-file-per-variant repo)."""
    if weight_name:
        kind, where = _resolve(source)
        if kind == "hub":
            return "file", _hub_download(where, weight_name, source)
        if kind == "dir":
            if not (where / weight_name).is_file():
                raise CheckpointError(f"{where / weight_name}: file not found (weight_name {weight_name!r} in "
                                      f"folder {where})")
            return "file", where / weight_name
        raise CheckpointError(f"{where}: weight_name {weight_name!r} needs a folder or hub repo as source, "
                              f"not a file")
    if source is None or str(source).strip() == "":
        raise CheckpointError("no model source given: expected a file, a diffusers folder or a hub id org/name")
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        return "file", path
    if path.is_dir():
        return "dir", path
    if not path.is_absolute() and not text.startswith((".", "~")):
        if _HUB_ID.fullmatch(text) and path.suffix.lower() not in WEIGHT_SUFFIXES:
            return "hub", text
        if m := _HUB_FILE.fullmatch(text):
            return "file", _hub_download(m[1], m[2], text)
    raise CheckpointError(f"{text}: file not found (expected a weights file, a diffusers folder or a hub id "
                          f"org/name)")


def _config_dir(config) -> Path | None:
    """A local diffusers config folder from `config` (a folder, or a hub id whose configs are fetched/cached)."""
    if config is None:
        return None
    path = Path(str(config)).expanduser()
    if path.is_dir():
        return path
    if _HUB_ID.fullmatch(str(config)) and not path.is_absolute():
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "**/*.json", "*.txt", "**/*.txt"]
        for local in (True, False):
            try:
                return Path(snapshot_download(str(config), allow_patterns=patterns, local_files_only=local))
            except Exception as e:
                error = e
        raise CheckpointError(f"{config}: config hub repo neither cached nor downloadable ({error})")
    raise CheckpointError(f"{config}: config folder not found (expected a local diffusers config folder)")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: file not found") from e
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable JSON config ({e})") from e


def _check_folder_class(folder: Path, expected: tuple[str, ...], what: str, marker: str = "config.json") -> None:
    cfg_path = folder / marker
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder}: expected {what} (a diffusers folder with {marker}), found no {marker}")
    name = _read_json(cfg_path).get("_class_name")
    if name is not None and name not in expected:
        raise CheckpointError(f"{folder}: expected {what}, but its {marker} is for {name}")


def _from_pretrained(cls, where, what: str, **kwargs):
    import torch

    try:
        return cls.from_pretrained(str(where), torch_dtype=torch.float32, **kwargs).eval().requires_grad_(False)
    except CheckpointError:
        raise
    except Exception as e:
        origin = "folder" if Path(str(where)).is_dir() else "hub id (not in the local cache and not downloadable?)"
        raise CheckpointError(f"{where}: cannot load {what} from this {origin} ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from e


def _pretrained(cls, kind: str, where, what: str):
    """A model from a diffusers folder (its class checked first) or a hub id."""
    if kind == "dir":
        _check_folder_class(where, (cls.__name__,), what)
    return _from_pretrained(cls, where, what)


def _to_float32(sd: dict) -> dict:
    import torch

    return {k: (v.to(torch.float32) if v.is_floating_point() else v) for k, v in sd.items()}


def _expected_keys(cls, config_dir: Path, subfolder=None) -> tuple[set, set]:
    """(parameter names, all state-dict names) of `cls` built from the config on the meta device (no memory)."""
    import torch

    try:
        config = cls.load_config(str(config_dir), subfolder=subfolder)
        with torch.device("meta"):
            model = cls.from_config(config)
    except Exception as e:
        where = Path(config_dir) / (subfolder or "")
        raise CheckpointError(f"{where}: not a usable {cls.__name__} config ({type(e).__name__}: {e})") from e
    return {n for n, _ in model.named_parameters()}, set(model.state_dict())


def _mismatch(path, config_dir, missing, unexpected) -> CheckpointError:
    parts = []
    if missing:
        parts.append(f"{len(missing)} weights missing from the file (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} weights the config has no place for (e.g. {', '.join(unexpected[:3])})")
    return CheckpointError(f"{path}: does not match the config {config_dir}: {'; '.join(parts)}")


def _single_file(cls, sd: dict, path, config_dir: Path, converted_keys, subfolder=None):
    """`cls.from_single_file` with a local config folder and no network, made strict: diffusers only logs weights
    it cannot place and leaves weights the file lacks on the meta device, so compare the converted keys first."""
    params, names = _expected_keys(cls, config_dir, subfolder)
    converted = set(converted_keys)
    missing, unexpected = sorted(params - converted), sorted(converted - names)
    if missing or unexpected:
        raise _mismatch(path, Path(config_dir) / (subfolder or ""), missing, unexpected)
    kwargs = {"subfolder": subfolder} if subfolder else {}
    try:
        # Tensors are made float32 here rather than with torch_dtype=, so the model is built in float32 directly.
        model = cls.from_single_file(_to_float32(sd), config=str(config_dir), local_files_only=True, **kwargs)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be loaded as {cls.__name__} with the config {config_dir} "
                              f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})"
                              ) from e
    still_meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if still_meta:
        raise _mismatch(path, config_dir, still_meta, [])
    return model.eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------------------------
# base model (SD1.5)
# ---------------------------------------------------------------------------------------------------------------

def _load_scheduler(where, subfolder="scheduler", **kwargs):
    import diffusers

    try:
        cfg = diffusers.DDIMScheduler.load_config(str(where), subfolder=subfolder, **kwargs)
        cls = getattr(diffusers, cfg.get("_class_name", "DDIMScheduler"), diffusers.DDIMScheduler)
        return cls.from_config(cfg)
    except Exception as e:
        raise CheckpointError(f"{where}: no readable scheduler config in {subfolder}/ ({e})") from e


def _checked_tokenizer(folder, where, **kwargs):
    """A CLIP tokenizer from `folder`; current transformers quietly builds an empty one when the vocabulary files
    are missing, so insist on a real vocabulary."""
    from transformers import CLIPTokenizer

    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(folder), **kwargs)
    except Exception as e:
        raise CheckpointError(f"{where}: no readable CLIP tokenizer ({type(e).__name__}: {e})") from e
    vocab = tokenizer.get_vocab()
    if len(vocab) <= 256 or "<|endoftext|>" not in vocab:
        raise CheckpointError(f"{where}: no CLIP tokenizer vocabulary (vocab.json and merges.txt) found")
    return tokenizer


def _load_tokenizer_for_single_file(config_dir: Path, path):
    from huggingface_hub import try_to_load_from_cache

    local = config_dir / "tokenizer"
    if local.is_dir():
        return _checked_tokenizer(local, local)
    for repo, subfolder in TOKENIZER_REPOS:
        try:
            vocab = try_to_load_from_cache(repo, f"{subfolder}/vocab.json" if subfolder else "vocab.json")
        except Exception:
            continue
        if isinstance(vocab, str) and (Path(vocab).parent / "merges.txt").is_file():
            return _checked_tokenizer(Path(vocab).parent, f"{repo} (Hugging Face cache)")
    raise CheckpointError(
        f"{path}: no CLIP tokenizer found for this single-file checkpoint. Put the SD1.5 tokenizer files "
        f"(vocab.json, merges.txt, tokenizer_config.json) in {local}, pass config= a diffusers SD1.5 folder that has "
        f"a tokenizer/ subfolder, or cache one once with network access: "
        f"`hf download openai/clip-vit-large-patch14 vocab.json merges.txt tokenizer_config.json "
        f"special_tokens_map.json`")


def _load_clip_from_ldm(sd: dict, config_dir: Path, path):
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel

    prefix = "cond_stage_model.transformer."
    te = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not te:
        raise CheckpointError(f"{path}: expected an SD1.5 checkpoint with a CLIP text encoder "
                              f"(cond_stage_model.transformer.*); this one has none (SD2.x and SDXL files use "
                              f"other text encoders and are not supported)")
    try:
        cfg = CLIPTextConfig.from_pretrained(str(config_dir / "text_encoder"))
    except Exception as e:
        raise CheckpointError(f"{config_dir}: no readable text_encoder/config.json ({e})") from e
    with init_empty_weights():
        model = CLIPTextModel(cfg)
    expected = set(model.state_dict())
    renamed = {}
    for key, value in te.items():
        if key not in expected and key.startswith("text_model.") and key[len("text_model."):] in expected:
            key = key[len("text_model."):]
        elif key not in expected and "text_model." + key in expected:
            key = "text_model." + key
        if key not in expected and key.endswith("position_ids"):
            continue        # a non-persistent buffer in current transformers; the model builds its own
        renamed[key] = value
    missing, unexpected = sorted(expected - set(renamed)), sorted(set(renamed) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{path}: CLIP text encoder does not match {config_dir / 'text_encoder'}: "
                              f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    try:
        model.load_state_dict(_to_float32(renamed), strict=True, assign=True)
    except Exception as e:
        raise CheckpointError(f"{path}: CLIP text encoder does not match {config_dir / 'text_encoder'} ({e})") from e
    return model.eval().requires_grad_(False)


def load_base(source, config=None, weight_name=None) -> dict:
    """An SD1.5 base model: {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}, fp32 on the CPU.
    `source`: a hub id, a diffusers pipeline folder, or a single-file checkpoint in the original LDM layout."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    kind, where = _resolve(source, weight_name)
    if kind in ("dir", "hub"):
        what = "an SD1.5 pipeline (unet/, vae/, text_encoder/, tokenizer/, scheduler/)"
        if kind == "dir":
            if not (where / "unet").is_dir() and not (where / "model_index.json").is_file():
                raise CheckpointError(f"{where}: expected a diffusers SD1.5 pipeline folder (model_index.json, "
                                      f"unet/, vae/, text_encoder/, tokenizer/, scheduler/)")
        out = {
            "unet": _from_pretrained(UNet2DConditionModel, where, what, subfolder="unet"),
            "vae": _from_pretrained(AutoencoderKL, where, what, subfolder="vae"),
            "text_encoder": _from_pretrained(CLIPTextModel, where, what, subfolder="text_encoder"),
        }
        out["tokenizer"] = _checked_tokenizer(where, f"{where} (tokenizer/)", subfolder="tokenizer")
        out["scheduler"] = _load_scheduler(where)
        return out

    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    sd = read_state_dict(where)
    _expect(where, classify(sd), ("sd_ldm",), "an SD1.5 checkpoint in the original LDM layout "
            "(model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.*)")
    probe = sd.get("model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight")
    if probe is not None and probe.shape[-1] != 768 and config is None:
        raise CheckpointError(f"{where}: expected an SD1.5 checkpoint (cross-attention width 768), found width "
                              f"{probe.shape[-1]} (SD2.x/SDXL are not supported); pass config= for other models")
    config_dir = _config_dir(config) or CONFIGS / "sd15"
    unet_sd = {k: v for k, v in sd.items() if k.startswith("model.diffusion_model.")}
    unet = _single_file(UNet2DConditionModel, unet_sd, where, config_dir,
                        convert_ldm_unet_checkpoint(unet_sd, dict(UNet2DConditionModel.load_config(
                            str(config_dir), subfolder="unet"))).keys(), subfolder="unet")
    vae_sd = {k: v for k, v in sd.items() if k.startswith(("first_stage_model.", "vae."))}
    if not vae_sd:
        raise CheckpointError(f"{where}: expected an SD1.5 checkpoint with a VAE (first_stage_model.*); "
                              f"this one has none")
    vae = _single_file(AutoencoderKL, vae_sd, where, config_dir,
                       convert_ldm_vae_checkpoint(vae_sd, dict(AutoencoderKL.load_config(
                           str(config_dir), subfolder="vae"))).keys(), subfolder="vae")
    text_encoder = _load_clip_from_ldm(sd, config_dir, where)
    tokenizer = _load_tokenizer_for_single_file(config_dir, where)
    scheduler = _load_scheduler(config_dir)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


# ---------------------------------------------------------------------------------------------------------------
# motion modules
# ---------------------------------------------------------------------------------------------------------------

def _motion_version_from_shapes(shapes: dict[str, tuple]) -> tuple[str, int | None]:
    """("v1"|"v2"|"v3"|"unknown", position-encoding length or None) from key names and shapes."""
    pe = next((s for k, s in shapes.items() if k.endswith(("pos_encoder.pe", "pos_embed.pe")) and len(s) >= 2),
              None)
    length = int(pe[1]) if pe else None
    if any(k.startswith("mid_block.motion_modules.") for k in shapes):
        return "v2", length
    if length == 24:
        return "v1", length
    if length is not None:
        return "v3", length
    return "unknown", None


def _version_from_config(cfg: dict) -> str:
    if cfg.get("use_motion_mid_block", True):
        return "v2"
    return "v1" if cfg.get("motion_max_seq_length", 32) == 24 else "v3"


def _is_sdxl_motion(shapes) -> bool:
    return any(".motion_modules." in k for k in shapes) and not any(k.startswith("down_blocks.3.") for k in shapes)


def motion_adapter_info(source, config=None, weight_name=None) -> dict:
    """{"version": "v1"|"v2"|"v3"|"unknown", "max_frames": int} without building the model: from config.json for
    folders and hub ids, from the safetensors header for .safetensors, from the loaded tensors for .ckpt files."""
    kind, where = _resolve(source, weight_name)
    if kind in ("dir", "hub"):
        if kind == "dir":
            _check_folder_class(where, ("MotionAdapter",), "an AnimateDiff motion adapter")
            cfg = _read_json(where / "config.json")
        else:
            cfg = _read_json(_hub_download(where, "config.json", source))
            if cfg.get("_class_name", "MotionAdapter") != "MotionAdapter":
                raise CheckpointError(f"{where}: expected an AnimateDiff motion adapter, hub config is for "
                                      f"{cfg.get('_class_name')}")
        return {"version": _version_from_config(cfg), "max_frames": int(cfg.get("motion_max_seq_length", 32))}
    shapes = _file_keys_and_shapes(where)
    _expect(where, classify(shapes), ("motion_module", "motion_module_diffusers"), "an AnimateDiff motion module")
    version, length = _motion_version_from_shapes(shapes)
    if length is None:
        config_dir = _config_dir(config) if config is not None else None
        if config_dir is not None:
            cfg = _read_json(config_dir / "config.json")
            length = int(cfg.get("motion_max_seq_length", 32))
            if version == "unknown":
                version = _version_from_config(cfg)
        else:
            length = 32
    return {"version": version, "max_frames": length}


def load_motion_adapter(source, config=None, weight_name=None):
    """A diffusers MotionAdapter (fp32, CPU) from a hub id, a diffusers folder, an original AnimateDiff motion
    module (mm_sd_v15.ckpt v1, mm_sd_v15_v2.ckpt v2, v3_sd15_mm.ckpt v3) or a diffusers-format single file (e.g.
    AnimateDiff-Lightning's *_diffusers.safetensors). The v1/v2/v3 config is chosen from the keys when `config`
    is None."""
    from diffusers import MotionAdapter
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    kind, where = _resolve(source, weight_name)
    what = "an AnimateDiff motion adapter"
    if kind in ("dir", "hub"):
        return _pretrained(MotionAdapter, kind, where, what)
    sd = read_state_dict(where)
    _expect(where, classify(sd), ("motion_module", "motion_module_diffusers"), "an AnimateDiff motion module")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    config_dir = _config_dir(config)
    if config_dir is None:
        if _is_sdxl_motion(shapes):
            raise CheckpointError(f"{where}: looks like an SDXL motion module (3 down blocks); only SD1.5 motion "
                                  f"modules have shipped configs; pass config= a diffusers MotionAdapter folder")
        version, _ = _motion_version_from_shapes(shapes)
        config_dir = CONFIGS / f"motion_adapter_{version if version in MOTION_VERSIONS else 'v3'}"
    converted = convert_animatediff_checkpoint_to_diffusers(sd).keys()
    return _single_file(MotionAdapter, sd, where, config_dir, converted)


# ---------------------------------------------------------------------------------------------------------------
# SparseCtrl and ControlNet
# ---------------------------------------------------------------------------------------------------------------

def load_sparsectrl(source, config=None, weight_name=None):
    """A diffusers SparseControlNetModel (fp32, CPU) from a hub id, a diffusers folder, or an original SparseCtrl
    file (v3_sd15_sparsectrl_rgb.ckpt: `controlnet_cond_embedding.weight`; v3_sd15_sparsectrl_scribble.ckpt:
    `controlnet_cond_embedding.conv_in.weight`)."""
    from diffusers import SparseControlNetModel
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    kind, where = _resolve(source, weight_name)
    what = "a SparseCtrl model"
    if kind in ("dir", "hub"):
        return _pretrained(SparseControlNetModel, kind, where, what)
    sd = read_state_dict(where)
    _expect(where, classify(sd), ("sparsectrl",), "a SparseCtrl model (controlnet_cond_embedding.* + motion modules)")
    if "controlnet_cond_embedding.weight" in sd:
        variant = "rgb"
    elif "controlnet_cond_embedding.conv_in.weight" in sd:
        variant = "scribble"
    else:
        raise CheckpointError(f"{where}: expected a SparseCtrl RGB (controlnet_cond_embedding.weight) or scribble "
                              f"(controlnet_cond_embedding.conv_in.weight) model; it has neither")
    config_dir = _config_dir(config) or CONFIGS / f"sparsectrl_{variant}"
    converted = convert_animatediff_checkpoint_to_diffusers(sd).keys()
    return _single_file(SparseControlNetModel, sd, where, config_dir, converted)


def load_controlnet(source, config=None, weight_name=None):
    """A diffusers ControlNetModel (fp32, CPU) from a hub id, a diffusers folder, an original ControlNet v1.1 file
    (control_v11*_sd15_*.pth, `control_model.*` keys) or a diffusers-format single file."""
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    kind, where = _resolve(source, weight_name)
    what = "a ControlNet"
    if kind in ("dir", "hub"):
        return _pretrained(ControlNetModel, kind, where, what)
    sd = read_state_dict(where)
    found = classify(sd)
    _expect(where, found, ("controlnet_ldm", "controlnet_diffusers"), "an SD1.5 ControlNet (control_model.* keys, "
            "or the diffusers ControlNetModel layout)")
    if found == "controlnet_ldm":
        # ControlNet 1.0 files may carry the whole SD model too; only control_model.* belongs to the ControlNet.
        if any(k.startswith("control_model.") for k in sd):
            sd = {k: v for k, v in sd.items() if k.startswith("control_model.")}
    config_dir = _config_dir(config) or CONFIGS / "controlnet_sd15"
    cfg = dict(ControlNetModel.load_config(str(config_dir)))
    converted = sd.keys() if found == "controlnet_diffusers" else convert_controlnet_checkpoint(sd, cfg).keys()
    return _single_file(ControlNetModel, sd, where, config_dir, converted)


# ---------------------------------------------------------------------------------------------------------------
# LoRAs
# ---------------------------------------------------------------------------------------------------------------

def _weights_in_folder(folder: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors"))
    if len(found) == 1:
        return found[0]
    raise CheckpointError(f"{folder}: expected {what} ({' or '.join(names)}), found "
                          f"{len(found)} .safetensors files")


def convert_motion_lora(state_dict: dict) -> dict:
    """Original AnimateDiff motion LoRA keys -> the diffusers format: the motion-module part of each key converted
    exactly as diffusers converts motion modules, `processor.to_q_lora.down.weight` kept, `unet.` prefixed."""
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    converted = convert_animatediff_checkpoint_to_diffusers(state_dict)
    return {f"unet.{k}": v for k, v in converted.items()}


def motion_lora_state_dict(source, weight_name=None) -> dict:
    """The diffusers-format state dict of a motion LoRA (what `pipe.load_lora_weights(sd, adapter_name=...)`
    takes), fp32: from a hub id or folder (diffusion_pytorch_model.safetensors), a diffusers-format file, or an
    original v2_lora_*.ckpt."""
    kind, where = _resolve(source, weight_name)
    what = "an AnimateDiff motion LoRA"
    if kind == "hub":
        where = _hub_download(where, "diffusion_pytorch_model.safetensors", source)
    elif kind == "dir":
        where = _weights_in_folder(where, ("diffusion_pytorch_model.safetensors", "pytorch_lora_weights.safetensors"),
                                   what)
    sd = read_state_dict(where)
    found = classify(sd)
    _expect(where, found, ("motion_lora", "motion_lora_diffusers"), what + " (…motion_modules…_lora… keys)")
    if found == "motion_lora":
        sd = convert_motion_lora(sd)
    elif not all(k.startswith("unet.") for k in sd):
        sd = {k if k.startswith("unet.") else f"unet.{k}": v for k, v in sd.items()}
    return _to_float32(sd)


_UNET_ONLY_LORA = re.compile(r"(down_blocks|mid_block|up_blocks)\.")


def image_lora_source(source, weight_name=None):
    """Something `pipe.load_lora_weights` accepts for an SD1.5 image LoRA: a hub id or a diffusers LoRA folder
    (as a string), or the state dict of a single file (kohya `lora_unet_*`/`lora_te_*` with alphas, or diffusers
    format), read safely."""
    kind, where = _resolve(source, weight_name)
    what = "an SD1.5 image LoRA"
    if kind == "hub":
        return where
    if kind == "dir":
        if (where / "pytorch_lora_weights.safetensors").is_file():
            return str(where)
        where = _weights_in_folder(where, ("pytorch_lora_weights.safetensors",), what)
    sd = read_state_dict(where)
    found = classify(sd)
    if found in ("motion_lora", "motion_lora_diffusers"):
        raise CheckpointError(f"{where}: expected {what}, but this is an AnimateDiff motion LoRA; "
                              f"configure it as a motion_lora")
    _expect(where, found, ("image_lora",), what + " (kohya lora_unet_*/lora_te_* or diffusers *lora* keys)")
    if all(_UNET_ONLY_LORA.match(k) for k in sd):
        # UNet keys with no component prefix (AnimateDiff's v3_sd15_adapter.ckpt: `down_blocks.0.attentions.0.
        # transformer_blocks.0.attn1.processor.to_q_lora.down.weight`): diffusers only loads keys under "unet."
        # and would silently skip every one of these.
        sd = {f"unet.{k}": v for k, v in sd.items()}
    return _to_float32(sd)
