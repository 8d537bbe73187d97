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


def _expected(cls, config_dir: Path, subfolder=None) -> tuple[set, dict]:
    """(parameter names, {state-dict name: shape}) of `cls` built from the config on the meta device (no memory)."""
    import torch

    try:
        config = cls.load_config(str(config_dir), subfolder=subfolder)
        with torch.device("meta"):
            model = cls.from_config(config)
    except Exception as e:
        where = Path(config_dir) / (subfolder or "")
        raise CheckpointError(f"{where}: not a usable {cls.__name__} config ({type(e).__name__}: {e})") from e
    return {n for n, _ in model.named_parameters()}, {k: tuple(v.shape) for k, v in model.state_dict().items()}


def mismatch_error(path, config_dir, missing, unexpected) -> CheckpointError:
    parts = []
    if missing:
        parts.append(f"{len(missing)} weights missing from the file (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} weights the config has no place for (e.g. {', '.join(unexpected[:3])})")
    return CheckpointError(f"{path}: does not match the config {config_dir}: {'; '.join(parts)}")


def strict_single_file(
    cls, sd: dict, path, config_dir: Path, converted: dict, subfolder=None, dtype=None, what=None, unplaced=()
):
    """`cls.from_single_file` with a local config folder and no network, made strict: diffusers only logs weights
    it cannot place and leaves weights the file lacks on the meta device, so compare the converted weights (names
    and shapes) first. `unplaced`: names of the file a conversion left out (it drops what it has no place for).

    The model is built on the meta device and takes the file's tensors one by one, each cast to `dtype` (float32
    when None) as it is placed: no random initialisation, no float32 copy of the whole file on the way."""
    import torch

    dtype = dtype or torch.float32
    where = Path(config_dir) / (subfolder or "")
    params, shapes = _expected(cls, config_dir, subfolder)
    missing = sorted(params - set(converted))
    unexpected = sorted(set(unplaced) | (set(converted) - set(shapes)))
    if missing or unexpected:
        raise mismatch_error(path, where, missing, unexpected)
    wrong = [(k, tuple(v.shape), shapes[k]) for k, v in converted.items() if tuple(v.shape) != shapes[k]]
    if wrong:
        key, got, want = wrong[0]
        raise CheckpointError(
            f"{path}: {len(wrong)} weights do not have the shapes of {what or cls.__name__} with the config {where} "
            f"(e.g. {key}: {got} in the file, {want} expected): a model of another family or size"
        )
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
