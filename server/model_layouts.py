"""Model roots: an AUTOMATIC1111/Forge install, a ComfyUI install or a plain folder, and which of its folders hold
which kind of model. Stdlib only: the server builds its model list from it and the add-on's preferences count what
a folder holds with it, both by listing directories (no hashing, no loading).

Folders, as the projects define them:
- A1111/Forge: `models/Stable-diffusion`, `models/Lora` (+ `models/LyCORIS`), `models/VAE`, `embeddings`
  (modules/cmd_args.py, extensions-builtin/Lora/preload.py), `models/ControlNet` and the ControlNet extension's
  own `extensions/sd-webui-controlnet/models`, sd-webui-animatediff's `extensions/sd-webui-animatediff/model`.
  A1111 keeps AnimateDiff's motion LoRAs in `models/Lora` and SparseCtrl and IP-Adapter files in
  `models/ControlNet`: those are told apart by their file names (and for .safetensors by their key names).
- ComfyUI (folder_paths.py): `models/checkpoints` (+ `models/diffusers` pipeline folders), `models/loras`,
  `models/vae`, `models/embeddings`, `models/controlnet`, `models/clip_vision`; ComfyUI_IPAdapter_plus's
  `models/ipadapter`; AnimateDiff-Evolved's
  `models/animatediff_models` + `custom_nodes/ComfyUI-AnimateDiff-Evolved/models` and
  `models/animatediff_motion_lora` + `custom_nodes/ComfyUI-AnimateDiff-Evolved/motion_lora`.
- A plain folder: its subfolders by the names either project uses (so `ComfyUI/models` or `webui/models` work
  too), and the files directly in it by their well-known names only.
Both projects list their folders recursively; so does this. A one-click package's outer folder (`webui/`,
`ComfyUI/` inside) is looked into. The folders an install's own settings add (ComfyUI's extra_model_paths.yaml,
A1111's COMMANDLINE_ARGS in webui-user.bat/.sh) are listed too, in the install's order (install_configs.py).

Well-known public files (`files = [...]` on the entries of default_models.toml) are found under the default name
of the model they are (`v3_sd15_mm.ckpt` -> motion_module `v3`); every other file under its stem.
"""

from __future__ import annotations

import json
import os
import struct
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .install_configs import COMFYUI_YAML, a1111_folders, comfyui_folders

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
DEFAULT_CONFIG = Path(__file__).resolve().parent / "default_models.toml"
MODEL_FOLDER_MARKERS = ("model_index.json", "config.json", "diffusion_pytorch_model.safetensors")
MAX_DEPTH = 4  # subfolders below a model folder: artists sort by style or author, never deeper than this

A1111 = (
    ("models/Stable-diffusion", "base"),
    ("models/Lora", "lora"),
    ("models/LyCORIS", "lora"),
    ("models/VAE", "vae"),
    ("embeddings", "embedding"),
    ("models/ControlNet", "controlnet"),
    ("extensions/sd-webui-controlnet/models", "controlnet"),
    ("extensions/sd-webui-animatediff/model", "motion_module"),
)
COMFYUI = (
    ("models/checkpoints", "base"),
    ("models/diffusers", "base"),  # diffusers pipeline folders (model_index.json)
    ("models/loras", "lora"),
    ("models/vae", "vae"),
    ("models/embeddings", "embedding"),
    ("models/controlnet", "controlnet"),
    ("models/animatediff_models", "motion_module"),
    ("custom_nodes/ComfyUI-AnimateDiff-Evolved/models", "motion_module"),
    ("models/animatediff_motion_lora", "motion_lora"),
    ("custom_nodes/ComfyUI-AnimateDiff-Evolved/motion_lora", "motion_lora"),
    ("models/clip_vision", "image_encoder"),
    ("models/ipadapter", "ip_adapter"),
)
PLAIN = tuple(
    dict.fromkeys(
        [(Path(sub).name, kind) for sub, kind in A1111 + COMFYUI if sub.startswith(("models/", "embeddings"))]
    )
)
LAYOUTS = {"a1111": ("A1111/Forge install", A1111), "comfyui": ("ComfyUI install", COMFYUI), "folder": ("", PLAIN)}
# One-click packages put the install one level down (sd.webui/webui, webui_forge_*/webui, ComfyUI_windows_portable).
NESTED = ("webui", "ComfyUI", "stable-diffusion-webui", "stable-diffusion-webui-forge")

WORDS = {  # kind -> (one, many), as the artist says it
    "base": ("checkpoint", "checkpoints"),
    "lora": ("LoRA", "LoRAs"),
    "vae": ("VAE", "VAEs"),
    "embedding": ("embedding", "embeddings"),
    "controlnet": ("ControlNet", "ControlNets"),
    "motion_module": ("motion module", "motion modules"),
    "motion_lora": ("motion LoRA", "motion LoRAs"),
    "sparsectrl": ("SparseCtrl model", "SparseCtrl models"),
    "ip_adapter": ("IP-Adapter", "IP-Adapters"),
    "image_encoder": ("image encoder", "image encoders"),
}


@dataclass(frozen=True)
class Found:
    kind: str
    name: str
    path: str
    well_known: bool = False  # named by the default config's name for this public file


def _layout_of(folder: Path) -> str | None:
    if (folder / "models" / "Stable-diffusion").is_dir() or (folder / "webui.py").is_file():
        return "a1111"
    if (folder / "models" / "checkpoints").is_dir() or (folder / "folder_paths.py").is_file():
        return "comfyui"
    return None


def detect(root) -> tuple[str, Path]:
    """(layout, the install's own folder): "a1111", "comfyui" or "folder"."""
    root = Path(root).expanduser()
    layout = _layout_of(root)
    if layout:
        return layout, root
    for name in NESTED:
        layout = _layout_of(root / name)
        if layout:
            return layout, root / name
    return "folder", root


def well_known() -> dict[str, tuple[str, str]]:
    """Lower-case file name -> (kind, default name), from the `files` lists of default_models.toml."""
    if not _WELL_KNOWN:
        with open(DEFAULT_CONFIG, "rb") as f:
            data = tomllib.load(f)
        for kind, entries in data.items():
            for name, entry in entries.items() if isinstance(entries, dict) else ():
                for file in entry.get("files", []) if isinstance(entry, dict) else ():
                    _WELL_KNOWN[file.lower()] = (kind, name)
    return _WELL_KNOWN


_WELL_KNOWN: dict[str, tuple[str, str]] = {}


def safetensors_header(path) -> dict:
    """The JSON header of a .safetensors file (tensor name -> dtype, shape, offsets; "__metadata__"), read alone.
    Raises OSError or ValueError when the file is not one."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("shorter than a safetensors header")
        (size,) = struct.unpack("<Q", raw)
        if not 0 < size <= HEADER_LIMIT:
            raise ValueError(f"a header of {size} bytes")
        return json.loads(f.read(size))


HEADER_LIMIT = 100 << 20  # real headers are under 2 MB; anything near this is not a safetensors file


def safetensors_keys(path: str) -> list[str]:
    """The tensor names in a .safetensors file's header (remembered per file version); [] when unreadable."""
    try:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        if key not in _keys:
            _keys[key] = [k for k in safetensors_header(path) if k != "__metadata__"]
        return _keys[key]
    except (OSError, ValueError):
        return []


_keys: dict[tuple, list[str]] = {}


def kind_of(folder_kind: str, filename: str, path: str) -> str:
    """The kind of a weights file in a folder for `folder_kind`: A1111 mixes motion LoRAs into LoRAs, SparseCtrl and
    IP-Adapters into ControlNets, and VAEs into checkpoints."""
    lower = filename.lower()
    if folder_kind == "base":
        # A1111 pairs `model.vae.pt` (.ckpt, .safetensors) with `model.safetensors` beside it: a VAE
        return "vae" if os.path.splitext(lower)[0].endswith(".vae") else "base"
    if folder_kind == "lora":
        if lower.startswith("v2_lora_") or "motion_lora" in lower or "motionlora" in lower:
            return "motion_lora"
    elif folder_kind == "controlnet":
        if "sparsectrl" in lower:
            return "sparsectrl"
        if lower.startswith(("ip-adapter", "ip_adapter")):
            return "ip_adapter"
    else:
        return folder_kind
    if lower.endswith(".safetensors"):
        keys = safetensors_keys(path)
        if any("motion_modules" in k or "temporal_transformer" in k for k in keys):
            return "motion_lora" if folder_kind == "lora" else "sparsectrl"
        if folder_kind == "controlnet" and any(k.startswith(("image_proj.", "ip_adapter.")) for k in keys):
            return "ip_adapter"
    return folder_kind


def _walk(folder: str, depth: int = 0):
    """(path, is a model folder) of the weight files and diffusers model folders under `folder`, sorted."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name.lower())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.name.lower().endswith(WEIGHT_SUFFIXES):
            yield entry.path, False
        elif entry.is_dir():
            if any(os.path.exists(os.path.join(entry.path, m)) for m in MODEL_FOLDER_MARKERS):
                yield entry.path, True
            elif depth < MAX_DEPTH:
                yield from _walk(entry.path, depth + 1)


def folders(layout: str, base: Path) -> list[tuple[str, str]]:
    """(folder, kind) of every folder of an install in the order it lists them, existing or not: its standard
    folders with those its settings add (install_configs.py)."""
    if layout == "a1111":
        return a1111_folders(base, A1111)
    standard = [(str(base / sub), kind) for sub, kind in LAYOUTS[layout][1]]
    if layout != "comfyui":
        return standard
    extra = comfyui_folders(base)
    return [(f, k) for f, k, first in extra if first] + standard + [(f, k) for f, k, first in extra if not first]


def scan(root) -> list[Found]:
    """Every model in a root, in a fixed order (the install's folders in its order, then file names); the first file
    of a (kind, name) wins over later ones. A missing root holds nothing."""
    layout, base = detect(root)
    table = well_known()
    found, seen, listed = [], set(), []
    for folder, kind in folders(layout, base):
        if os.path.isdir(folder) and (real := os.path.realpath(folder)) not in listed:
            listed.append(real)  # vae and VAE are one folder on Windows and macOS
            found.extend(_scan_folder(folder, kind, table))
    if layout == "folder":
        found.extend(_top_level_well_known(base, table))
    out = []
    for item in found:
        if (item.kind, item.name) not in seen:
            seen.add((item.kind, item.name))
            out.append(item)
    return out


def _scan_folder(folder: str, folder_kind: str, table) -> list[Found]:
    out = []
    for path, is_model_folder in _walk(folder):
        filename = os.path.basename(path)
        if not is_model_folder and filename.lower() in table:
            kind, name = table[filename.lower()]
            out.append(Found(kind, name, path, True))
            continue
        kind = folder_kind if is_model_folder else kind_of(folder_kind, filename, path)
        out.append(Found(kind, filename if is_model_folder else Path(filename).stem, path))
    return out


def _top_level_well_known(base: Path, table) -> list[Found]:
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    return [Found(*table[n.lower()], str(base / n), True) for n in names if n.lower() in table]


def summary(root) -> str:
    """What a root holds, in the artist's words: "ComfyUI install: 12 checkpoints, 30 LoRAs, 2 motion modules"."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return "folder not found" if not root.exists() else "not a folder"
    layout, _ = detect(root)
    counts: dict[str, int] = {}
    for item in scan(root):
        counts[item.kind] = counts.get(item.kind, 0) + 1
    label = LAYOUTS[layout][0] + _settings_note(root)
    if not counts:
        return f"{label}: no models found in this folder" if label else "no models found in this folder"
    parts = [f"{n} {WORDS[k][0 if n == 1 else 1]}" for k in WORDS if (n := counts.get(k))]
    return f"{label}: {', '.join(parts)}" if label else f"Folder: {', '.join(parts)}"


def added_folders(root) -> tuple[str, list[str]]:
    """(where they are named, the folders) an install's own settings add to its standard folders."""
    layout, base = detect(root)
    if layout == "folder":
        return "", []
    standard = {os.path.normpath(base / sub) for sub, _ in LAYOUTS[layout][1]}
    added = list(dict.fromkeys(f for f, _ in folders(layout, base) if f not in standard))
    return (COMFYUI_YAML if layout == "comfyui" else "COMMANDLINE_ARGS or settings"), added


def _settings_note(root) -> str:
    """ " (+ 2 folders from extra_model_paths.yaml, 1 not found)": the folders an install's settings add."""
    where, added = added_folders(root)
    if not added:
        return ""
    missing = sum(not os.path.isdir(f) for f in added)
    note = f" (+ {len(added)} folder{'s' if len(added) > 1 else ''} from {where}"
    return note + (f", {missing} not found)" if missing else ")")
