"""Which models exist: the model config (TOML names -> sources) and the identity of a model for manifests.

A request names models only by the names of the config; the config alone maps a name to a source (a hub id,
a diffusers folder or a single file inside the configured folders). No path from a request reaches the
filesystem.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .files import WEIGHT_SUFFIXES
from .hashes import HASHES
from .roots import add_found, warn_missing_folders
from .sources import is_hub_source

KINDS = (
    "base",
    "motion_module",
    "controlnet",
    "sparsectrl",
    "motion_lora",
    "lora",
    "camera_control",
    "ip_adapter",
    "image_encoder",
    "vae",
    "embedding",  # textual inversion: single files; `[folders] embedding = [...]` takes an A1111 embeddings/ folder
)
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "default_models.toml"
log = logging.getLogger("marionette")
TOP_LEVEL = ("folders", "roots", "file_configs")  # the TOML's keys that are not model kinds


class UnknownModel(LookupError):
    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(known) or 'none configured'}")


@dataclass(frozen=True)
class ModelEntry:
    kind: str
    name: str
    source: str  # hub id "org/name", hub file "org/name/file.ckpt", or an absolute local path
    config: str | None  # local diffusers config folder for single files
    weight_name: str | None = None  # a file inside a hub repo or folder (e.g. AnimateDiff-Lightning)
    image_encoder: str | None = None  # ip_adapter only: the name of its image_encoder entry

    @property
    def local(self) -> bool:
        return os.path.isabs(self.source)


def _source(root: Path, value: str) -> str:
    """A hub repo or hub file stays as written unless a path of that name exists next to the config file;
    anything else is a local path relative to the config file's folder."""
    if is_hub_source(value) and not (root / value).exists():
        return value
    return _resolve(root, value)


class ModelConfig:
    """Model names by kind, from a TOML file: `[kind.name] source = ..., config = ...`, `[folders] kind = [...]` and
    `roots = [...]` (A1111/Forge or ComfyUI installs, loaders/roots.py), plus the roots given to `load`.

    Relative paths resolve against the TOML file's folder. Each folder listed under `[folders]` adds its weight
    files and model folders under their stem names. `[file_configs] kind = "folder"` is the diffusers config for
    single files found in roots and folders (default: the configs shipped for the public models).
    `rescan()` lists the folders again: files added since appear, names already known keep their source.
    """

    def __init__(self, entries: dict[str, dict[str, ModelEntry]], build=None):
        self.entries = entries
        self._build = build  # None: nothing to list again (no roots, no [folders])
        self._built = _keys(entries)  # what the last listing made: entries added later by hand stay
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | None = None, roots=()) -> ModelConfig:
        path = Path(path or DEFAULT_CONFIG).expanduser().resolve()
        with open(path, "rb") as f:
            data = tomllib.load(f)
        root = path.parent
        explicit: dict[str, dict[str, ModelEntry]] = {k: {} for k in KINDS}
        for kind in KINDS:
            for name, item in data.get(kind, {}).items():
                if "source" not in item:
                    raise ValueError(f"{path}: [{kind}.{name}] needs a source")
                source = _source(root, item["source"])
                config = _source(root, item["config"]) if item.get("config") else None
                explicit[kind][name] = ModelEntry(
                    kind, name, source, config, item.get("weight_name"), item.get("image_encoder")
                )
        for kind in data:
            if kind not in TOP_LEVEL:
                cls._check_kind(kind, path)
        for kind in (*data.get("folders", {}), *data.get("file_configs", {})):
            cls._check_kind(kind, path)
        if not isinstance(data.get("roots", []), list) or not all(isinstance(r, str) for r in data.get("roots", [])):
            raise ValueError(f'{path}: roots must be a list of folders, e.g. roots = ["~/ComfyUI"]')
        folders = {kind: [_resolve(root, d) for d in dirs] for kind, dirs in data.get("folders", {}).items()}
        file_configs = {kind: _source(root, v) for kind, v in data.get("file_configs", {}).items()}
        all_roots = [_resolve(root, r) for r in data.get("roots", [])] + [_resolve(Path.cwd(), str(r)) for r in roots]
        for folder in all_roots:
            if not os.path.isdir(folder):
                raise ValueError(f"model root {folder}: {'not a folder' if os.path.exists(folder) else 'not found'}")
        warn_missing_folders(all_roots)

        def build() -> dict[str, dict[str, ModelEntry]]:
            entries = {kind: dict(names) for kind, names in explicit.items()}
            for kind, dirs in folders.items():
                for folder in dirs:
                    for name, source in _scan(folder):
                        config = file_configs.get(kind) if os.path.isfile(source) else None
                        entries[kind].setdefault(name, ModelEntry(kind, name, source, config))
            _link_image_encoders(entries, path)
            add_found(entries, all_roots, file_configs, ModelEntry)
            return entries

        return cls(build(), build if folders or all_roots else None)

    @staticmethod
    def _check_kind(kind: str, path: Path):
        if kind not in KINDS:
            raise ValueError(f"{path}: unknown model kind [{kind}]; kinds are {', '.join(KINDS)}")

    def rescan(self) -> None:
        """List the roots and folders again (directory listings only): new files appear, removed ones go, and a
        name already known keeps its source while that is there, so a loaded model never changes under a name."""
        if self._build is None:
            return
        with self._lock:
            try:
                fresh, old = self._build(), self.entries
            except ValueError as e:  # e.g. a second image encoder dropped into a [folders] folder
                log.warning("model list not refreshed: %s", e)
                return
            entries = {
                kind: {n: old[kind][n] if _kept(old[kind].get(n)) else e for n, e in names.items()}
                for kind, names in fresh.items()
            }
            for kind, name in _keys(old) - self._built:
                entries[kind].setdefault(name, old[kind][name])
            self._built, self.entries = _keys(fresh), entries

    def get(self, kind: str, name: str) -> ModelEntry:
        for attempt in (0, 1):
            try:
                return self.entries[kind][name]
            except KeyError:
                if attempt == 0 and kind in self.entries:
                    self.rescan()  # a file dropped into a root since the last listing
        raise UnknownModel(kind, name, sorted(self.entries.get(kind, {})))

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])


def _keys(entries: dict) -> set[tuple[str, str]]:
    return {(kind, name) for kind, names in entries.items() for name in names}


def _kept(entry: ModelEntry | None) -> bool:
    return entry is not None and (not entry.local or os.path.exists(entry.source))


def _link_image_encoders(entries: dict[str, dict[str, ModelEntry]], path: Path):
    """Each ip_adapter names an image_encoder of the config; without `image_encoder` it takes the config's only one."""
    encoders = sorted(entries["image_encoder"])
    for name, entry in entries["ip_adapter"].items():
        chosen = entry.image_encoder
        if chosen is None and len(encoders) == 1:
            chosen = encoders[0]
        if chosen not in encoders:
            raise ValueError(
                f"{path}: [ip_adapter.{name}] needs image_encoder = the name of an [image_encoder.NAME] entry"
                f" (configured: {', '.join(encoders) or 'none'})"
            )
        entries["ip_adapter"][name] = dataclasses.replace(entry, image_encoder=chosen)


def _resolve(root: Path, value: str) -> str:
    return str((root / Path(value).expanduser()).resolve())


def _scan(folder: str):
    if not os.path.isdir(folder):
        return
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith(WEIGHT_SUFFIXES):
            yield Path(entry.name).stem, entry.path
        elif entry.is_dir() and any(
            os.path.exists(os.path.join(entry.path, f))
            for f in ("config.json", "model_index.json", "diffusion_pytorch_model.safetensors")
        ):
            yield entry.name, entry.path


def file_identity(entry: ModelEntry, wait: bool = True) -> dict:
    """The identity of a model for the manifest: its source and the sha256 of each local weight file. With `wait`
    false, hashes not known yet are listed under "sha256_pending" (and computed in the background) instead."""
    out = {"name": entry.name, "source": entry.source}
    if entry.config:
        out["config"] = entry.config
    if not entry.local:
        return out
    paths = (
        [entry.source]
        if os.path.isfile(entry.source)
        else sorted(str(p) for p in Path(entry.source).rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    )
    hashes, pending = {}, []
    for p in paths:
        name = os.path.relpath(p, entry.source) if p != entry.source else os.path.basename(p)
        digest = HASHES.get(p, wait)
        if digest is None:
            pending.append(name)
        else:
            hashes[name] = digest
    out["sha256"] = hashes
    if pending:
        out["sha256_pending"] = pending
    return out
