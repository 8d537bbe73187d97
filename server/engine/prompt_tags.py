"""A1111's extra-network tags in prompts: `<lora:NAME:WEIGHT>` and the LoRAs they add to a job.

As A1111 reads them (modules/extra_networks.py, extensions-builtin/Lora/extra_networks_lora.py):

- a tag is `<KIND:ARGS>` (KIND letters, digits or `_`, ARGS anything but `>`), cut out of the prompt before prompt
  editing and attention are read; ARGS split at `:`, an argument with `=` is named (`te=0.5`);
- `<lora:NAME>` is weight 1, `<lora:NAME:W>` weight W, `<lora:NAME:TE:UNET>` (or `te=`, `unet=`) weights the
  text encoder and the UNet apart; `<lyco:...>` is the same as `<lora:...>` (A1111 ≥ 1.5);
- a tag's LoRA acts on the whole generation, wherever in the prompt (or inside prompt editing) it stands.

Not read, a 422 each: `<hypernet:...>` (no hypernetworks here), any other kind, `dyn=` (LyCORIS' dynamic dim), a
weight that is not a number. How tags from several prompt fields combine with the spec's `loras` is `job_loras`.
Pure Python: the API checks prompts with it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..protocol.numbers import LIMITS

LORA_KINDS = ("lora", "lyco")
TAG = re.compile(r"<(\w+):([^>]+)>")  # A1111's extra-network tag
WEIGHTS = LIMITS["weight"]  # the range the spec's `loras` take


@dataclass(frozen=True)
class TagLora:
    """A LoRA named in a prompt: its weights on the text encoder and on the UNet, and the tag as written."""

    name: str
    te: float
    unet: float
    tag: str

    @property
    def weight(self) -> float | tuple[float, float]:
        """One number when both parts take the same weight, else (text encoder, UNet)."""
        return self.te if self.te == self.unet else (self.te, self.unet)


def strip_tags(text: str) -> str:
    """The prompt without its extra-network tags, as A1111 encodes it."""
    return TAG.sub("", text)


def read_tags(text: str) -> tuple[list[TagLora], list[str]]:
    """The LoRAs the prompt's tags name, and what is wrong with the tags that cannot be read."""
    loras, errors = [], []
    for m in TAG.finditer(text):
        kind, tag = m.group(1), m.group(0)
        if kind == "hypernet":
            errors.append(f"{tag}: hypernetworks are not supported; remove the tag")
            continue
        if kind not in LORA_KINDS:
            errors.append(f"{tag}: <{kind}:...> is not a tag Marionette reads (only <lora:NAME:WEIGHT> and <lyco:...>)")
            continue
        lora, problem = _lora(m.group(2), tag)
        if problem:
            errors.append(f"{tag}: {problem}")
        else:
            loras.append(lora)
    return loras, errors


def _lora(args: str, tag: str) -> tuple[TagLora | None, str | None]:
    positional, named = [], {}
    for item in args.split(":"):
        parts = item.split("=", 2)
        if len(parts) == 2:
            named[parts[0]] = parts[1]
        else:
            positional.append(item)
    if not positional or not positional[0]:
        return None, "name the LoRA: <lora:NAME:WEIGHT>"
    if "dyn" in named or len(positional) > 3:
        return None, "LyCORIS' dynamic dimension (dyn) is not supported; write <lora:NAME:WEIGHT>"
    unknown = sorted(set(named) - {"te", "unet"})
    if unknown:
        return None, f"unknown argument {unknown[0]!r}; A1111 reads te= and unet="
    try:
        te = float(named.get("te", positional[1] if len(positional) > 1 else 1.0))
        unet = float(named.get("unet", positional[2] if len(positional) > 2 else te))
    except ValueError:
        return None, "the weight is not a number: write it like <lora:NAME:0.8>"
    low, high = WEIGHTS
    for value in (te, unet):
        if not (math.isfinite(value) and low <= value <= high):
            return None, f"weight {value:g} is outside {low:g}..{high:g}"
    return TagLora(positional[0], te, unet, tag), None


def prompt_fields(spec) -> list[tuple[str, str]]:
    """(field path, text) of every prompt of a spec, in the order A1111-style errors name them."""
    fields = [("prompt", spec.prompt), ("negative_prompt", spec.negative_prompt)]
    return fields + [(f"prompts[{i}].prompt", k.prompt) for i, k in enumerate(spec.prompts)]


def tag_loras(spec) -> tuple[list[tuple[str, TagLora]], list[tuple[str, str]]]:
    """(field, LoRA) for every readable LoRA tag of the spec's prompts, and (field, message) for every problem:
    unreadable tags, and one LoRA given different weights (a LoRA acts on the whole clip: one weight)."""
    found, errors = [], []
    first: dict[str, tuple[str, TagLora]] = {}
    for field, text in prompt_fields(spec):
        loras, problems = read_tags(text)
        errors += [(field, p) for p in problems]
        names_here = set()
        for lora in loras:
            seen = first.get(lora.name)
            if lora.name in names_here:
                problem = f"{lora.name!r} is named twice here; A1111 would apply it twice, write one tag"
            elif seen is not None and seen[1].weight != lora.weight:
                problem = (
                    f"{seen[0]} gives {lora.name!r} as {seen[1].tag}; a LoRA acts on the whole clip, so give it "
                    f"the same weight in every prompt"
                )
            else:
                names_here.add(lora.name)
                first.setdefault(lora.name, (field, lora))
                found.append((field, lora))
                continue
            errors.append((field, f"{lora.tag}: {problem}"))
    return found, errors


def job_loras(spec) -> list[dict]:
    """The image LoRAs a job applies: the spec's `loras`, then those only prompt tags name (the union over the
    prompt, the negative prompt and the prompt-travel keys). A name in both takes the tag's weight, as A1111's own
    "Add Lora to prompt" setting gives way to a prompt that names the same LoRA. Each item: name, weight (a number, or
    [text encoder, UNet]), and `from_prompt` (the field of its first tag) for those from tags."""
    tags: dict[str, tuple[str, TagLora]] = {}
    for field, lora in tag_loras(spec)[0]:
        tags.setdefault(lora.name, (field, lora))
    out = []
    for m in spec.loras:
        if m.name in tags:
            field, lora = tags.pop(m.name)
            out.append({"name": m.name, "weight": _weight(lora), "from_prompt": field, "tag": lora.tag})
        else:
            out.append({"name": m.name, "weight": m.weight})
    out += [{"name": n, "weight": _weight(lora), "from_prompt": f, "tag": lora.tag} for n, (f, lora) in tags.items()]
    return out


def _weight(lora: TagLora):
    weight = lora.weight
    return list(weight) if isinstance(weight, tuple) else weight
