"""What a model *source* is, and where it is: the one definition, used by the model config and every loader.

A source is one of:

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

Every loader returns objects on the CPU in the dtype it is asked for (float32 by default), built on the meta
device and filled tensor by tensor; the caller moves them. Anything that cannot be loaded
(a missing file, an unreadable or corrupt one, a file of the wrong kind, a file that does not match its config)
raises :class:`CheckpointError`, whose message names the file and what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path

from .files import WEIGHT_SUFFIXES, CheckpointError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
HUB_FILE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)/(.+\.(?:safetensors|ckpt|pt|pth|bin))")


def is_hub_source(text) -> bool:
    """Whether `text` has the form of a hub repo ``org/name`` or a hub file ``org/name/path/file.ckpt``. Callers
    that know a base folder try the local path first (a folder ``org/name`` next to a config file wins)."""
    text = str(text)
    if Path(text).is_absolute() or text.startswith((".", "~")):
        return False
    if HUB_FILE.fullmatch(text):
        return True
    return bool(HUB_ID.fullmatch(text)) and Path(text).suffix.lower() not in WEIGHT_SUFFIXES


def hub_download(repo: str, filename: str, source) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:
        pass
    try:
        return Path(hf_hub_download(repo, filename))
    except Exception as e:
        raise CheckpointError(
            f"{source}: {filename} of hub repo {repo} is neither in the local Hugging Face cache "
            f"nor downloadable ({type(e).__name__}: {e})"
        ) from e


def resolve_source(source, weight_name: str | None = None) -> tuple[str, object]:
    """("file", Path) | ("dir", Path) | ("hub", "org/name"). With `weight_name`, the file of that name inside the
    folder or hub repo `source` (e.g. AnimateDiff-Lightning's one-file-per-variant repo)."""
    if weight_name:
        kind, where = resolve_source(source)
        if kind == "hub":
            return "file", hub_download(where, weight_name, source)
        if kind == "dir":
            if not (where / weight_name).is_file():
                raise CheckpointError(
                    f"{where / weight_name}: file not found (weight_name {weight_name!r} in folder {where})"
                )
            return "file", where / weight_name
        raise CheckpointError(f"{where}: weight_name {weight_name!r} needs a folder or hub repo as source, not a file")
    if source is None or str(source).strip() == "":
        raise CheckpointError("no model source given: expected a file, a diffusers folder or a hub id org/name")
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        return "file", path
    if path.is_dir():
        return "dir", path
    if is_hub_source(text):
        if m := HUB_FILE.fullmatch(text):
            return "file", hub_download(m[1], m[2], text)
        return "hub", text
    raise CheckpointError(f"{text}: file not found (expected a weights file, a diffusers folder or a hub id org/name)")


def config_folder(config) -> Path | None:
    """A local diffusers config folder from `config` (a folder, or a hub id whose configs are fetched/cached)."""
    if config is None:
        return None
    path = Path(str(config)).expanduser()
    if path.is_dir():
        return path
    if HUB_ID.fullmatch(str(config)) and not path.is_absolute():
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "**/*.json", "*.txt", "**/*.txt"]
        for local in (True, False):
            try:
                return Path(snapshot_download(str(config), allow_patterns=patterns, local_files_only=local))
            except Exception as e:
                error = e
        raise CheckpointError(f"{config}: config hub repo neither cached nor downloadable ({error})")
    raise CheckpointError(f"{config}: config folder not found (expected a local diffusers config folder)")
