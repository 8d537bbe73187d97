"""Which models exist (the model config) and which are loaded (the store).

A request names models only by the names of the config; the config alone maps a name to a source (a hub id,
a diffusers folder or a single file inside the configured folders). No path from a request reaches the
filesystem.
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

KINDS = ("base", "motion_module", "controlnet", "sparsectrl", "motion_lora", "lora")
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
DEFAULT_CONFIG = Path(__file__).with_name("default_models.toml")


class UnknownModel(LookupError):
    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(known) or 'none configured'}")


@dataclass(frozen=True)
class ModelEntry:
    kind: str
    name: str
    source: str            # hub id "org/name", or an absolute local path
    config: str | None     # local diffusers config folder for single files
    weight_name: str | None = None   # a file inside a hub repo or folder (e.g. AnimateDiff-Lightning)

    @property
    def local(self) -> bool:
        return os.path.isabs(self.source)


def _is_hub_id(root: Path, source: str) -> bool:
    """`org/name` that is not an existing path next to the config file."""
    return (source.count("/") == 1 and not source.startswith((".", "/", "~"))
            and not (root / source).exists())


class ModelConfig:
    """Model names by kind, from a TOML file: `[kind.name] source = ..., config = ...` and `[folders] kind = [...]`.

    Relative paths resolve against the TOML file's folder. Each folder listed under `[folders]` adds its weight
    files and model folders under their stem names.
    """

    def __init__(self, entries: dict[str, dict[str, ModelEntry]]):
        self.entries = entries

    @classmethod
    def load(cls, path: Path | None = None) -> "ModelConfig":
        path = Path(path or DEFAULT_CONFIG).expanduser().resolve()
        with open(path, "rb") as f:
            data = tomllib.load(f)
        root = path.parent
        entries: dict[str, dict[str, ModelEntry]] = {k: {} for k in KINDS}
        for kind, dirs in data.get("folders", {}).items():
            cls._check_kind(kind, path)
            for folder in dirs:
                for name, source in _scan(_resolve(root, folder)):
                    entries[kind][name] = ModelEntry(kind, name, source, None)
        for kind in KINDS:
            for name, item in data.get(kind, {}).items():
                if "source" not in item:
                    raise ValueError(f"{path}: [{kind}.{name}] needs a source")
                source = item["source"] if _is_hub_id(root, item["source"]) else _resolve(root, item["source"])
                config = _resolve(root, item["config"]) if item.get("config") else None
                entries[kind][name] = ModelEntry(kind, name, source, config, item.get("weight_name"))
        for kind in data:
            if kind != "folders":
                cls._check_kind(kind, path)
        return cls(entries)

    @staticmethod
    def _check_kind(kind: str, path: Path):
        if kind not in KINDS:
            raise ValueError(f"{path}: unknown model kind [{kind}]; kinds are {', '.join(KINDS)}")

    def get(self, kind: str, name: str) -> ModelEntry:
        try:
            return self.entries[kind][name]
        except KeyError:
            raise UnknownModel(kind, name, sorted(self.entries.get(kind, {}))) from None

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])


def _resolve(root: Path, value: str) -> str:
    return str((root / Path(value).expanduser()).resolve())


def _scan(folder: str):
    if not os.path.isdir(folder):
        return
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith(WEIGHT_SUFFIXES):
            yield Path(entry.name).stem, entry.path
        elif entry.is_dir() and any(os.path.exists(os.path.join(entry.path, f))
                                    for f in ("config.json", "model_index.json",
                                              "diffusion_pytorch_model.safetensors")):
            yield entry.name, entry.path


_hash_cache: dict[tuple, str] = {}


def file_identity(entry: ModelEntry) -> dict:
    """The identity of a model for the manifest: its source and the sha256 of each local weight file."""
    out = {"name": entry.name, "source": entry.source}
    if entry.config:
        out["config"] = entry.config
    if not entry.local:
        return out
    paths = [entry.source] if os.path.isfile(entry.source) else sorted(
        str(p) for p in Path(entry.source).rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    hashes = {}
    for p in paths:
        st = os.stat(p)
        key = (p, st.st_size, st.st_mtime_ns)
        if key not in _hash_cache:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            _hash_cache[key] = h.hexdigest()
        hashes[os.path.relpath(p, entry.source) if p != entry.source else os.path.basename(p)] = _hash_cache[key]
    out["sha256"] = hashes
    return out


class ModelStore:
    """Loads models on first use and keeps them: a second job with the same models loads nothing.

    One assembled pipeline (base + motion module) is kept at a time; components stay cached so that switching
    back costs only the assembly. LoRAs are loaded once per pipeline as PEFT adapters; jobs only set weights.
    """

    def __init__(self, config: ModelConfig, device: str | None = None, dtype: str | None = None):
        import torch  # heavy: imported when the store is made, not when the module is

        self.config = config
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = "float16" if self.device.startswith("cuda") else "float32"
        self.dtype = getattr(torch, dtype)
        self._cache: dict[tuple[str, str], object] = {}
        self._pipe_key: tuple[str, str] | None = None
        self._pipe = None
        self._adapters: set[str] = set()
        self._applied: list | None = None   # the (kind, name, weight) list set_loras applied last
        self.lock = threading.RLock()
        self.loads: list[str] = []   # every load, in order: what tests and the manifest read
        self._loaded: tuple[str, ...] = ()

    # --- components -------------------------------------------------------------------------------
    def _component(self, kind: str, name: str):
        key = (kind, name)
        if key not in self._cache:
            from . import checkpoints

            entry = self.config.get(kind, name)
            loader = {
                "base": checkpoints.load_base,
                "motion_module": checkpoints.load_motion_adapter,
                "controlnet": checkpoints.load_controlnet,
                "sparsectrl": checkpoints.load_sparsectrl,
            }[kind]
            obj = loader(entry.source, entry.config) if entry.weight_name is None else \
                loader(entry.source, entry.config, weight_name=entry.weight_name)
            if kind in ("controlnet", "sparsectrl"):
                obj = obj.to(self.device, self.dtype).eval()
            self._cache[key] = obj
            self.loads.append(f"{kind}:{name}")
            self._refresh()
        return self._cache[key]

    def controlnet(self, name: str):
        with self.lock:
            return self._component("controlnet", name)

    def sparsectrl(self, name: str):
        with self.lock:
            return self._component("sparsectrl", name)

    def pipeline(self, base: str, motion_module: str):
        """The assembled pipeline for a base model and motion module, building it if needed."""
        from diffusers.models import UNetMotionModel

        from .pipeline import GuidedAnimateDiffPipeline

        with self.lock:
            if self._pipe_key == (base, motion_module):
                return self._pipe
            parts = self._component("base", base)
            adapter = self._component("motion_module", motion_module)
            self._drop_pipeline()
            unet = UNetMotionModel.from_unet2d(parts["unet"], adapter)
            # Inference only. Frozen weights also make a LoRA at weight 0 bit-identical to none: torch picks
            # other matmul paths for weights that require grad, and loading a LoRA freezes the base weights.
            unet.requires_grad_(False)
            pipe = GuidedAnimateDiffPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"],
                                             tokenizer=parts["tokenizer"], unet=unet, motion_adapter=adapter,
                                             scheduler=parts["scheduler"])
            pipe.to(self.device, self.dtype)
            pipe.set_progress_bar_config(disable=True)
            self._pipe, self._pipe_key = pipe, (base, motion_module)
            self.loads.append(f"pipeline:{base}+{motion_module}")
            self._refresh()
            return pipe

    def set_loras(self, pipe, loras: list[tuple[str, str, float]]):
        """Activate exactly these (kind, name, weight) LoRAs on the pipeline, loading any not loaded yet."""
        from . import checkpoints

        with self.lock:
            if list(loras) == self._applied:
                return  # per-window schedules ask again for every window and step
            names, weights = [], []
            for kind, name, weight in loras:
                adapter = f"{kind}__{name}"
                if adapter not in self._adapters:
                    entry = self.config.get(kind, name)
                    if kind == "motion_lora":
                        weights_in = checkpoints.motion_lora_state_dict(entry.source)
                    else:
                        weights_in = checkpoints.image_lora_source(entry.source)
                    pipe.load_lora_weights(weights_in, adapter_name=adapter)
                    self._adapters.add(adapter)
                    self.loads.append(f"{kind}:{name}")
                    self._refresh()
                names.append(adapter)
                weights.append(weight)
            self._applied = list(loras)
            if not self._adapters:
                return
            if names:
                pipe.enable_lora()
                pipe.set_adapters(names, adapter_weights=weights)
            else:
                pipe.disable_lora()

    # --- introspection and release ------------------------------------------------------------------
    def loaded(self) -> list[str]:
        """What is in memory now. Lock-free (a snapshot), so /health answers while a model loads."""
        return list(self._loaded)

    def _refresh(self):
        items = [f"{k}:{n}" for k, n in self._cache]
        if self._pipe_key:
            items.append(f"pipeline:{self._pipe_key[0]}+{self._pipe_key[1]}")
        self._loaded = tuple(items + sorted(a.replace("__", ":", 1) for a in self._adapters))

    def _drop_pipeline(self):
        if self._pipe is not None and self._adapters:
            self._pipe.unload_lora_weights()  # the text encoder is shared with the cache: strip its adapters
        self._pipe, self._pipe_key = None, None
        self._adapters.clear()
        self._applied = None
        self._refresh()

    def release(self):
        """Unload every model and give the accelerator's memory back."""
        import torch

        with self.lock:
            self._drop_pipeline()
            self._cache.clear()
            self._refresh()
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
