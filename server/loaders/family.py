"""The model family of a weights file or folder (SD1.5, SD2, SDXL, SD3, Flux) from its header alone: key names,
shapes and metadata, never the weights. A1111 and ComfyUI folders hold all of them side by side; Marionette runs
SD1.5 only, so a picked file of another family is refused before anything loads (server/api/family_checks.py).

What is read: `.safetensors` the JSON header (8-byte little-endian length, then JSON); `.ckpt/.pt/.pth/.bin` the
pickle through `torch.load(mmap=True, weights_only=True, map_location="meta")`, which builds meta tensors (shapes
only) without paging the data in; diffusers folders their `model_index.json`/`config.json`. Each file version
(path, size, mtime) is read once, and kept across restarts in the data folder's `file_families.json`.

The signs, learned from the original projects (Stability-AI/generative-models, ComfyUI's model detection and LoRA
key maps, AnimateDiff's SDXL branch, Hotshot-XL, kohya's sd-scripts metadata):

- Flux: `double_blocks`/`single_blocks` (BFL and kohya names), `single_transformer_blocks` (diffusers); a DiT
  `transformer_blocks.N.attn.` of width 3072;
- SD3: `joint_blocks` (MMDiT), or a diffusers DiT block (`transformer_blocks.N.attn.`, `ff_context`) of another width;
- SD2: the OpenCLIP text encoder `cond_stage_model.model.`, 1024-wide cross-attention or text encoder, a UNet whose
  `proj_in` is linear (SD1.5's is a 1×1 convolution);
- SDXL: `conditioner.embedders.`, `label_emb`/`add_embedding` (the size conditioning), kohya's `lora_te1_`/`lora_te2_`,
  diffusers' `text_encoder_2.`, 2048-wide (1280 for the refiner) cross-attention, IP-Adapters whose `to_k_ip` take
  2048, ControlNet-LLLite, `clip_g` embeddings, Hotshot-XL's `temporal_attentions`, AnimateDiff SDXL's three UNet
  levels (SD1.5 motion modules reach `down_blocks.3`/`up_blocks.3`), diffusers configs (`text_time`, 3 levels);
- metadata where the keys say nothing: `modelspec.architecture`, kohya's `ss_base_model_version`, `ss_v2`;
- `sd15`: 768-wide cross-attention or text encoder, else any layout Marionette reads as SD1.5 with none of the signs
  above (the tiny test models are 16 wide).

Not detectable: a separate VAE with 4 latent channels. SDXL's VAE has exactly SD1.5's keys and shapes and its public
files carry no metadata; only its diffusers config says so (`scaling_factor` 0.13025). A single-file 4-channel VAE
is None (unknown: usable, as before); a 16-channel one (SD3's or Flux's, the same architecture) is "sd3_flux".
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from ..model_layouts import safetensors_header
from ..protocol import MODEL_FAMILIES
from .files import WEIGHT_SUFFIXES, classify
from .hashes import FileHashes

_FLUX = re.compile(r"(?:^|[._])(?:double_blocks|single_blocks|single_transformer_blocks)[._]\d")
_SD3 = re.compile(r"(?:^|[._])joint_blocks[._]\d|(?:^|\.)transformer_blocks\.\d+\.(?:attn\.|ff_context\.)")
_DIT_WIDTH = re.compile(r"(?:^|\.)(?:transformer_blocks\.\d+|joint_blocks\.\d+\.x_block)\.attn\.(?:to_q|qkv)\.")
_SDXL = re.compile(
    r"(?:^|\.)(?:conditioner\.embedders\.|label_emb\.|add_embedding\.|text_encoder_2\.|temporal_attentions\.)"
    r"|^(?:lora_te1_|lora_te2_|lllite_)|^clip_g$"
)
_MOTION_BLOCK = re.compile(r"(?:^|\.)(down|up)_blocks\.(\d+)\.motion_modules\.")
_CROSS_K = re.compile(r"attn2[._](?:processor[._])?to_k(?![._]ip)")
_TEXT_Q = re.compile(r"(?:^|[._])(?:text_model|transformer)[._]encoder[._]layers[._]\d+[._]self_attn[._]q_proj")
_UNET_PROJ_IN = re.compile(r"(?:(?:input|output)_blocks\.\d+\.1|middle_block\.1|attentions\.\d+)\.proj_in\.weight$")
_NOT_DOWN = re.compile(r"lora_up|lora_B|lora[._]up|\.up\.weight$|hada_w[12]_a$|lokr_|lora_mid|alpha$|bias$")
_EMBEDDING = re.compile(r"^(?:emb_params|string_to_param\.\*|<.+>)$")

_WIDTH = {768: "sd15", 1024: "sd2", 1280: "sdxl", 2048: "sdxl"}  # cross-attention (text) widths
_TEXT_WIDTH = {768: "sd15", 1024: "sd2", 1280: "sdxl"}
_ARCHITECTURES = (  # modelspec.architecture prefixes (e.g. "stable-diffusion-xl-v1-base/lora")
    ("stable-diffusion-xl", "sdxl"),
    ("stable-diffusion-v1", "sd15"),
    ("stable-diffusion-v2", "sd2"),
    ("stable-diffusion-v3", "sd3"),
    ("stable-diffusion-3", "sd3"),
    ("flux", "flux"),
)
_BASE_VERSIONS = (("sdxl", "sdxl"), ("sd_v1", "sd15"), ("sd_v2", "sd2"), ("sd3", "sd3"), ("flux", "flux"))


def label(family: str | None) -> str:
    return MODEL_FAMILIES.get(family, "unknown") if family else "unknown"


def family_of_keys(shapes: dict[str, tuple], metadata: dict | None = None) -> str | None:
    """The family of a state dict given as key -> shape (and a safetensors header's metadata), or None."""
    keys = list(shapes)
    for sign in (_dit, _sd2_text_encoder, _sdxl_keys, _cross_width, _text_width, _ip_adapter_width, _linear_proj_in):
        found = sign(keys, shapes)
        if found:
            return found
    found = _embedding_width(keys, shapes) or _latent_channels(shapes) or _from_metadata(metadata or {})
    if found:
        return found
    return "sd15" if _sd15_layout(keys) else None


def _dit(keys, shapes):
    if any(_FLUX.search(k) for k in keys):
        return "flux"
    if not any(_SD3.search(k) for k in keys):
        return None
    widths = {_in_width(k, shapes[k]) for k in keys if _DIT_WIDTH.search(k)} - {None}
    return "flux" if 3072 in widths else "sd3"  # Flux's double blocks are 3072 wide; SD3 1536, SD3.5 Large 2432


def _sd2_text_encoder(keys, shapes):
    return "sd2" if any(k.startswith("cond_stage_model.model.") for k in keys) else None


def _sdxl_keys(keys, shapes):
    if any(_SDXL.search(k) for k in keys):
        return "sdxl"
    levels: dict[str, set[int]] = {"down": set(), "up": set()}
    for k in keys:
        m = _MOTION_BLOCK.search(k)
        if m:
            levels[m[1]].add(int(m[2]))
    # AnimateDiff SDXL (mm_sdxl_v10_beta): 3 UNet levels; every SD1.5 module has 4 (down_blocks.3, up_blocks.3)
    if levels["down"] and max(levels["down"]) == 2 and (not levels["up"] or max(levels["up"]) == 2):
        return "sdxl"
    return None


def _in_width(key: str, shape) -> int | None:
    """The input width of a linear weight, of a LoRA's down (A) matrix or of a LoHa's `hada_w*_b`; None for anything
    else."""
    if len(shape) != 2 or _NOT_DOWN.search(key) or not (key.endswith("weight") or re.search(r"hada_w[12]_b$", key)):
        return None
    return shape[1]


def _widths(keys, shapes, pattern, table):
    # temporal attention (motion modules, diffusers-layout ones included) is self-attention as wide as its level
    found = {table.get(_in_width(k, shapes[k])) for k in keys if pattern.search(k) and "motion_modules" not in k}
    found -= {None}
    for family in ("sdxl", "sd2", "sd15"):
        if family in found:
            return family
    return None


def _cross_width(keys, shapes):
    return _widths(keys, shapes, _CROSS_K, _WIDTH)


def _text_width(keys, shapes):
    return _widths(keys, shapes, _TEXT_Q, _TEXT_WIDTH)


def _ip_adapter_width(keys, shapes):
    return _widths(keys, shapes, re.compile(r"to_k_ip\.weight$"), _WIDTH)


def _linear_proj_in(keys, shapes):
    """SD2's transformers project in with a linear layer, SD1.5's with a 1×1 convolution (motion modules aside)."""
    for k in keys:
        if _UNET_PROJ_IN.search(k) and "motion_modules" not in k and "temporal" not in k:
            return "sd2" if len(shapes[k]) == 2 else None
    return None


def _embedding_width(keys, shapes):
    if len(keys) == 1 and _EMBEDDING.match(keys[0]) and shapes[keys[0]]:
        return _TEXT_WIDTH.get(shapes[keys[0]][-1])
    return None


def _latent_channels(shapes):
    for k, shape in shapes.items():
        if re.search(r"(?:^|\.)encoder\.conv_out\.weight$", k) and len(shape) == 4 and shape[0] == 32:
            return "sd3_flux"  # 16 latent channels (mean and log-variance): SD3's and Flux's VAE
    return None


def _from_metadata(metadata: dict):
    architecture = str(metadata.get("modelspec.architecture", "")).lower()
    for prefix, family in _ARCHITECTURES:
        if architecture.startswith(prefix):
            return family
    version = str(metadata.get("ss_base_model_version", "")).lower()
    for prefix, family in _BASE_VERSIONS:
        if version.startswith(prefix):
            return family
    return "sd2" if str(metadata.get("ss_v2", "")).lower() == "true" else None


def _sd15_layout(keys) -> bool:
    if classify(keys) != "unknown":
        return True
    if any(k.endswith("to_k_ip.weight") for k in keys):  # an IP-Adapter
        return True
    return len(keys) == 1 and bool(_EMBEDDING.match(keys[0]))


# --- reading headers ---------------------------------------------------------------------------------------------


def safetensors_shapes(path) -> tuple[dict[str, tuple], dict]:
    """Key -> shape and the metadata of a .safetensors file, from its JSON header alone."""
    header = safetensors_header(path)
    metadata = header.pop("__metadata__", None) or {}
    return {k: tuple(v["shape"]) for k, v in header.items()}, metadata


def pickle_shapes(path) -> dict[str, tuple]:
    """Key -> shape of a torch checkpoint, as meta tensors: the zip format is memory-mapped and no tensor data is
    read; the legacy (pre-1.6) format has to be read through once. Wrappers ("state_dict") are unwrapped and nested
    dicts (IP-Adapter's image_proj/ip_adapter, A1111 embeddings' string_to_param) flattened with dots."""
    import torch

    try:
        data = torch.load(str(path), map_location="meta", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e) and "zipfile" not in str(e):
            raise
        data = torch.load(str(path), map_location="meta", weights_only=True)
    while isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    return _flatten(data, "", torch.Tensor)


def _flatten(data, prefix: str, tensor_type) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}", tensor_type))
    elif isinstance(data, tensor_type) and prefix:
        out[prefix] = tuple(data.shape)
    return out


# --- files, folders, cache ---------------------------------------------------------------------------------------


class FamilyCache:
    """The family of each file version (path, size, mtime_ns: the key of hashes.py), kept in a JSON file (rows
    [path, size, mtime_ns, family]) so that a restart reads no header again. A changed file is a new version; the
    old version's row is dropped when the new one is read."""

    def __init__(self):
        self._known: dict[tuple, str | None] = {}
        self._file: Path | None = None
        self._lock = threading.Lock()

    def keep_in(self, path) -> None:
        """Read the families kept in `path` and keep every new one there; an unreadable file is ignored."""
        path = Path(path)
        try:
            rows = json.loads(path.read_text())
            known = {(str(p), int(n), int(m)): f for p, n, m, f in rows if f is None or f in MODEL_FAMILIES}
        except (OSError, ValueError, TypeError):
            known = {}
        with self._lock:
            self._file = path
            for key, family in known.items():
                self._known.setdefault(key, family)

    def get(self, key: tuple) -> tuple[bool, str | None]:
        with self._lock:
            return key in self._known, self._known.get(key)

    def put(self, key: tuple, family: str | None) -> None:
        with self._lock:
            for old in [k for k in self._known if k[0] == key[0] and k != key]:
                del self._known[old]
            self._known[key] = family
            if self._file is None:
                return
            try:
                self._file.parent.mkdir(parents=True, exist_ok=True)
                tmp = self._file.with_name(self._file.name + ".tmp")
                tmp.write_text(json.dumps([[*k, f] for k, f in self._known.items()]))
                os.replace(tmp, self._file)
            except OSError:
                pass  # a read-only data folder: headers are only read again after a restart


FAMILIES = FamilyCache()


def file_family(path) -> str | None:
    """The family of one weights file; None when unknown or unreadable (the loader then says what is wrong)."""
    try:
        key = FileHashes.version(path)
    except OSError:
        return None
    known, found = FAMILIES.get(key)
    if known:
        return found
    path = Path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            found = family_of_keys(*safetensors_shapes(path))
        elif path.suffix.lower() in WEIGHT_SUFFIXES:
            found = family_of_keys(pickle_shapes(path))
    except Exception:  # noqa: BLE001 - a broken file has no family; loading it names the problem
        found = None
    FAMILIES.put(key, found)
    return found


def family_of(source, weight_name: str | None = None) -> str | None:
    """The family of a local model source: a weights file, or a diffusers folder (its configs, else its weights)."""
    path = Path(source)
    if weight_name:
        path = path / weight_name
    if path.is_file():
        return file_family(path)
    if not path.is_dir():
        return None
    index = _read_json(path / "model_index.json")
    if index is not None:
        return _pipeline_family(path, index)
    config = _read_json(path / "config.json")
    if config is not None and config.get("_class_name"):
        return config_family(config)
    weights = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    weights.sort(key=lambda p: not p.name.endswith(".safetensors"))
    return file_family(weights[0]) if weights else None


def _pipeline_family(folder: Path, index: dict) -> str | None:
    cls = str(index.get("_class_name", ""))
    for sign, family in (("XL", "sdxl"), ("StableDiffusion3", "sd3"), ("Flux", "flux")):
        if sign in cls:
            return family
    unet = _read_json(folder / "unet" / "config.json")
    return config_family(unet) if unet is not None else None


def config_family(config: dict) -> str | None:
    """The family a diffusers config.json says (UNets, ControlNets, SparseCtrl, motion adapters, VAEs, DiTs)."""
    cls = str(config.get("_class_name", ""))
    if "Flux" in cls:
        return "flux"
    if "SD3" in cls:
        return "sd3"
    levels = len(config.get("block_out_channels") or ())
    if cls == "AutoencoderKL":
        scaling = config.get("scaling_factor")
        if config.get("latent_channels") == 16:
            return {1.5305: "sd3", 0.3611: "flux"}.get(scaling, "sd3_flux")
        return {0.13025: "sdxl", 0.18215: "sd15"}.get(scaling)
    if cls == "MotionAdapter":
        return {3: "sdxl", 4: "sd15"}.get(levels)
    if "UNet" not in cls and "ControlNet" not in cls:
        return None
    cross = config.get("cross_attention_dim")
    if config.get("addition_embed_type") == "text_time" or cross in (1280, 2048):
        return "sdxl"
    if config.get("use_linear_projection") or cross == 1024:
        return "sd2"
    return "sd15" if cross == 768 or levels == 4 else None


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def entry_family(entry, found: dict | None = None) -> str | None:
    """The family of a configured model whose files are on this machine (`found`: hub.availability(entry) when the
    caller has it); None when they are not, or the family is unknown."""
    from . import hub

    if entry.local:
        return family_of(entry.source, entry.weight_name)
    found = found if found is not None else hub.availability(entry)
    if not found["available"] or not found["where"]:
        return None
    where = Path(found["where"])
    name = entry.weight_name or (Path(entry.source).name if Path(entry.source).suffix in WEIGHT_SUFFIXES else None)
    return family_of(where, name if where.is_dir() and name else None)
