"""The text conditioning of a generation, step by step: prompt editing and alternation (prompt_schedule.py) on every
prompt field, prompt travel between the keys, and CFG's negative prompt.

Each prompt (tags cut out, prompt_tags.py) becomes its A1111 schedule over the job's steps; every distinct text of
every schedule is encoded once, all in one `encode_all` so that they share one chunk count. A step then takes, for
each key and for the negative prompt, the text its schedule holds at that step; steps that take the same texts share
one set of tensors. Prompts that do not change give no schedule at all: the loop runs exactly as before.

Which step: the index of the step among those that run, from 0, with `when` measured over all `steps` (A1111's
img2img: a clip at strength 0.5 of 30 steps runs 15, the first at index 0, so `[a:b:0.5]` switches after the last
one). FreeInit's iterations each denoise from a fresh start, so each runs the schedule from its beginning.
"""

from __future__ import annotations

import torch

from .conditioning import travel
from .prompt_schedule import entry_at
from .prompt_tags import strip_tags
from .text_encoding import PromptEncoder


def text_conditioning(
    text: PromptEncoder, keys: list[tuple[int, str]], negative: str | None, frames: int, steps: int
) -> tuple[torch.Tensor, torch.Tensor | None, list[tuple[torch.Tensor, torch.Tensor | None]] | None]:
    """(positive, negative, per-step schedule): positive (frames, tokens, dim) and negative (1, tokens, dim) at the
    first step; the schedule has one (positive, negative) per step, or is None when no prompt changes."""
    prompts = [p for _, p in keys] + ([negative] if negative is not None else [])
    schedules = [text.schedule(strip_tags(p), steps) for p in prompts]
    distinct = list(dict.fromkeys(t for entries in schedules for _, t in entries))
    encoded = dict(zip(distinct, text.encode_all(distinct)))
    cache: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor | None]] = {}

    def at(choice: tuple[int, ...]):
        if choice not in cache:
            texts = [entries[k][1] for entries, k in zip(schedules, choice)]
            positive = travel([(f, encoded[t][0]) for (f, _), t in zip(keys, texts)], frames)
            cache[choice] = (positive, encoded[texts[-1]] if negative is not None else None)
        return cache[choice]

    first = at(tuple(entry_at(entries, 0) for entries in schedules))
    if all(len(entries) == 1 for entries in schedules):
        return *first, None
    per_step = [at(tuple(entry_at(entries, i) for entries in schedules)) for i in range(steps)]
    return *first, per_step
