"""Tiny textual-inversion embeddings in the public file formats, for the tiny text encoder (TEXT_DIM values).

`build(root, dim)` writes ``embeddings/`` (the folder the tiny models.toml lists under ``[folders] embedding``):

- ``EasyNegative.safetensors``: {"emb_params": tensor[4, dim]}, the layout of EasyNegative and most civitai files;
- ``marionette_style.pt``: A1111's own `.pt` ({"string_to_token": {"*": 265}, "string_to_param": {"*":
  Parameter[3, dim]}, "name", "step", "sd_checkpoint", "sd_checkpoint_name"}, as its Train tab saves it);
- ``concept.bin``: a diffusers textual-inversion concept {"<concept>": tensor[dim]} (one vector).
"""

from __future__ import annotations

from pathlib import Path

SEED = 61
VECTORS = {"EasyNegative": 4, "marionette_style": 3, "concept": 1}


def vectors(name: str, dim: int):
    """The vectors the file of `name` holds (deterministic)."""
    import torch

    gen = torch.Generator().manual_seed(SEED + sorted(VECTORS).index(name))
    return torch.randn(VECTORS[name], dim, generator=gen)


def build(root, dim: int) -> Path:
    import torch
    from safetensors.torch import save_file

    folder = Path(root) / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": vectors("EasyNegative", dim)}, folder / "EasyNegative.safetensors")
    torch.save(
        {
            "string_to_token": {"*": 265},
            "string_to_param": {"*": torch.nn.Parameter(vectors("marionette_style", dim))},
            "name": "marionette_style",
            "step": 1500,
            "sd_checkpoint": None,
            "sd_checkpoint_name": None,
        },
        folder / "marionette_style.pt",
    )
    torch.save({"<concept>": vectors("concept", dim)[0]}, folder / "concept.bin")
    return folder


TOML = '[folders]\nembedding = ["embeddings"]\n'
