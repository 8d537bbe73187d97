"""Models of another family than SD1.5 (an SDXL or Pony checkpoint, an SDXL LoRA, a Flux file, ...) picked for a job:
one problem per spec field that names one, in the artist's words, before anything loads. Families come from the
files' headers (server/loaders/family.py); a model whose family is unknown is let through, as before."""

from __future__ import annotations

import os
import re

from ..engine.prompt_syntax import EMBEDDING_REF, resolve_embedding
from ..loaders.family import entry_family, label
from .prompt_checks import prompt_fields

_WORDS = {  # model kind -> (one, many) as the artist knows them
    "base": ("checkpoint", "checkpoints"),
    "motion_module": ("motion module", "motion modules"),
    "controlnet": ("ControlNet", "ControlNets"),
    "sparsectrl": ("SparseCtrl model", "SparseCtrl models"),
    "motion_lora": ("motion LoRA", "motion LoRAs"),
    "lora": ("LoRA", "LoRAs"),
    "camera_control": ("CameraCtrl model", "CameraCtrl models"),
    "ip_adapter": ("IP-Adapter", "IP-Adapters"),
    "vae": ("VAE", "VAEs"),
    "embedding": ("embedding", "embeddings"),
}


# An SDXL embedding carries a `clip_l` half for the CLIP ViT-L text encoder SD1.5 shares with SDXL; the embeddings
# loader reads that half, as ComfyUI does with an SD1.5 model (A1111 skips such files).
SD15_READABLE_EMBEDDINGS = (None, "sd15", "sdxl")


def family_problems(models, spec, named: list) -> list[tuple[str, str]]:
    """(spec field, message) for every chosen model, and every embedding a prompt uses, whose family is known and
    not SD1.5 (SDXL embeddings excepted: SD15_READABLE_EMBEDDINGS). `named`: (field, model entry) pairs,
    as resolve_models gives them."""
    out = []
    for field, entry in named:
        if entry.kind == "vae" and not os.path.isfile(entry.source):
            continue  # a VAE folder or hub id: api/spec_checks.vae_fit reads its config and says what does not fit
        family = entry_family(entry)
        if family not in (None, "sd15"):
            out.append((field, _message(entry.name, entry.kind, family)))
    embeddings = models.names("embedding")
    for field, text in prompt_fields(spec):
        for name, written in _embeddings_in(text, embeddings, spec.prompt_weighting != "comfy"):
            family = entry_family(models.get("embedding", name))
            if family in SD15_READABLE_EMBEDDINGS:
                continue
            if written.startswith("embedding:"):
                out.append((field, _message(name, "embedding", family)))
                continue
            out.append(
                (
                    field,
                    f"{written!r} in this prompt is the embedding {name}, {_article(family)} {label(family)} one (an "
                    f"embedding's name in a prompt uses it, as in A1111); Marionette runs SD1.5 embeddings — reword "
                    f"the prompt, or move {name}'s file out of the embeddings folder",
                )
            )
    return out


def usable(models, kind: str, names: list[str]) -> list[str]:
    """`names` of `kind` without those of another known family: what a 422 offers instead of an unknown name."""
    return [n for n in names if entry_family(models.get(kind, n)) in (None, "sd15")]


def _message(name: str, kind: str, family: str) -> str:
    one, many = _WORDS.get(kind, (kind.replace("_", " "), kind.replace("_", " ") + "s"))
    return f"{name} is {_article(family)} {label(family)} {one}; Marionette runs SD1.5 {many} — pick an SD1.5 one"


def _article(family: str) -> str:
    return "an" if label(family).startswith("S") else "a"


def _embeddings_in(text: str, embeddings: list[str], by_name: bool = True):
    """(configured name, text as written) of each embedding the prompt uses: `embedding:NAME`, or (`by_name`) the
    name itself as a word (A1111 reads an embedding's name anywhere in a prompt as the embedding; ComfyUI does not)."""
    seen = set()
    for m in EMBEDDING_REF.finditer(text):
        name = resolve_embedding(m.group(1), embeddings)
        if name is not None and name not in seen:
            seen.add(name)
            yield name, m.group(0)
    for name in embeddings if by_name else ():
        found = re.search(rf"(?<![\w:]){re.escape(name)}(?!\w)", text, re.IGNORECASE)
        if found and name not in seen:
            seen.add(name)
            yield name, found.group(0)
