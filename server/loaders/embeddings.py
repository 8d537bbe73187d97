"""Textual-inversion embeddings from the files A1111 and ComfyUI users have, as (vectors, dim) float32 tensors.

Formats, by what the file holds:

- A1111's `.pt` (what its Train tab saves, and most shared files): {"string_to_param": {"*": tensor[n, 768]},
  "string_to_token": ..., "name": ..., "step": ...};
- `.safetensors` as A1111 and civitai share them (EasyNegative, badhandv4...): {"emb_params": tensor[n, 768]};
- SDXL-style `.safetensors` {"clip_l": tensor[n, 768], "clip_g": ...}: the clip_l part, SD1.5's text encoder;
- diffusers' textual-inversion concepts (`learned_embeds.bin` / `.safetensors`): {"<token>": tensor[768]}.

Pickles are read with `torch.load(weights_only=True)` only; a file that needs more (an old ParameterDict) is
refused with a message that says so.
"""

from __future__ import annotations

from pathlib import Path

from .files import CheckpointError, _torch_load


def load_embedding(path) -> object:
    """The embedding's vectors, a float32 (n, dim) CPU tensor."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: embedding file not found")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            data = load_file(str(path), device="cpu")
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable .safetensors file ({type(e).__name__}: {e})") from e
    else:
        try:
            data = _torch_load(path)
        except Exception as e:
            raise CheckpointError(
                f"{path}: cannot be read as a weights-only torch file (it holds pickled Python objects, or is "
                f"corrupt); save the embedding as .safetensors ({type(e).__name__}: {str(e).splitlines()[0]})"
            ) from e
    vectors = _vectors(data)
    if not isinstance(vectors, torch.Tensor) or not vectors.is_floating_point():
        keys = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{path}: not a textual-inversion embedding (expected string_to_param, emb_params, clip_l or one "
            f"tensor; found {keys})"
        )
    vectors = vectors.detach().to(torch.float32)
    if vectors.ndim == 1:
        vectors = vectors[None]
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise CheckpointError(f"{path}: embedding vectors of shape {tuple(vectors.shape)}; expected (vectors, dim)")
    return vectors.contiguous()


def _vectors(data):
    import torch

    if not isinstance(data, dict):
        return None
    params = data.get("string_to_param")
    if isinstance(params, dict):
        return next(iter(params.values())) if len(params) == 1 else None
    for key in ("emb_params", "clip_l"):
        if key in data:
            return data[key]
    tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
    return tensors[0] if len(data) == 1 and tensors else None
