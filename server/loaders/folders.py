"""Diffusers folders and hub ids: `from_pretrained` with the folder's class checked first."""

from __future__ import annotations

import json
from pathlib import Path

from .files import CheckpointError


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: file not found") from e
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable JSON config ({e})") from e


def check_folder_class(folder: Path, expected: tuple[str, ...], what: str, marker: str = "config.json") -> None:
    cfg_path = folder / marker
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder}: expected {what} (a diffusers folder with {marker}), found no {marker}")
    name = read_json(cfg_path).get("_class_name")
    if name is not None and name not in expected:
        raise CheckpointError(f"{folder}: expected {what}, but its {marker} is for {name}")


def load_pretrained(cls, where, what: str, dtype=None, **kwargs):
    """`cls.from_pretrained`, built on the meta device and filled from the (memory-mapped) weights in `dtype`."""
    import torch

    try:
        return (
            cls.from_pretrained(str(where), torch_dtype=dtype or torch.float32, low_cpu_mem_usage=True, **kwargs)
            .eval()
            .requires_grad_(False)
        )
    except CheckpointError:
        raise
    except Exception as e:
        origin = "folder" if Path(str(where)).is_dir() else "hub id (not in the local cache and not downloadable?)"
        raise CheckpointError(
            f"{where}: cannot load {what} from this {origin} ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})"
        ) from e


def pretrained_model(cls, kind: str, where, what: str, dtype=None):
    """A model from a diffusers folder (its class checked first) or a hub id."""
    if kind == "dir":
        check_folder_class(where, (cls.__name__,), what)
    return load_pretrained(cls, where, what, dtype)


def weights_in_folder(folder: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors"))
    if len(found) == 1:
        return found[0]
    raise CheckpointError(f"{folder}: expected {what} ({' or '.join(names)}), found {len(found)} .safetensors files")
