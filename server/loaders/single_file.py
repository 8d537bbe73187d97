"""Single files in an original layout, loaded strictly against a local diffusers config (no network)."""

from __future__ import annotations

from pathlib import Path

from .files import CheckpointError


def cast(sd: dict, dtype) -> dict:
    """The floating tensors of `sd` in `dtype`, tensor by tensor; a tensor already in `dtype` is not copied."""
    if dtype is None:
        import torch

        dtype = torch.float32
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}


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


def mismatch_error(path, config_dir, missing, unexpected) -> CheckpointError:
    parts = []
    if missing:
        parts.append(f"{len(missing)} weights missing from the file (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} weights the config has no place for (e.g. {', '.join(unexpected[:3])})")
    return CheckpointError(f"{path}: does not match the config {config_dir}: {'; '.join(parts)}")


def strict_single_file(cls, sd: dict, path, config_dir: Path, converted_keys, subfolder=None, dtype=None):
    """`cls.from_single_file` with a local config folder and no network, made strict: diffusers only logs weights
    it cannot place and leaves weights the file lacks on the meta device, so compare the converted keys first.

    The model is built on the meta device and takes the file's tensors one by one, each cast to `dtype` (float32
    when None) as it is placed: no random initialisation, no float32 copy of the whole file on the way."""
    import torch

    dtype = dtype or torch.float32
    params, names = _expected_keys(cls, config_dir, subfolder)
    converted = set(converted_keys)
    missing, unexpected = sorted(params - converted), sorted(converted - names)
    if missing or unexpected:
        raise mismatch_error(path, Path(config_dir) / (subfolder or ""), missing, unexpected)
    kwargs = {"subfolder": subfolder} if subfolder else {}
    try:
        model = cls.from_single_file(
            sd, config=str(config_dir), local_files_only=True, torch_dtype=dtype, low_cpu_mem_usage=True, **kwargs
        )
    except Exception as e:
        raise CheckpointError(
            f"{path}: cannot be loaded as {cls.__name__} with the config {config_dir} "
            f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})"
        ) from e
    still_meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if still_meta:
        raise mismatch_error(path, config_dir, still_meta, [])
    return model.eval().requires_grad_(False)
