"""Reading weight files and telling what they hold, from their key names. No bpy, no FastAPI."""

from __future__ import annotations

from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")

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
        raise CheckpointError(
            f"{path}: unsupported file type {suffix or '(none)'}; expected one of {', '.join(WEIGHT_SUFFIXES)}"
        )
    try:
        data = _torch_load(path)
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


def _torch_load(path: Path):
    """Memory-mapped where the file is in torch's zip format: tensors are paged in as they are used, so a loader
    that casts and places them one by one never holds a second copy of the whole file."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e) and "zipfile" not in str(e):
            raise
    return torch.load(str(path), map_location="cpu", weights_only=True)  # the legacy (pre-1.6) format


def keys_and_shapes(path: Path) -> dict[str, tuple]:
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


def describe_kind(kind: str) -> str:
    return _KIND_TEXT[kind]


def expect_kind(path, kind: str, allowed: tuple[str, ...], what: str) -> None:
    if kind not in allowed:
        raise CheckpointError(f"{path}: expected {what}, but the file holds {_KIND_TEXT[kind]}")
