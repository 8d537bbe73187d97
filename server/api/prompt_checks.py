"""The prompts of a spec can be read: A1111 weights that are numbers (ComfyUI's: finite), every `embedding:NAME`
configured, and extra-network tags Marionette reads (`<lora:NAME:WEIGHT>`; whether the LoRA is configured is
model_names.py's)."""

from __future__ import annotations

from ..engine.comfy_prompt import comfy_prompt_errors
from ..engine.prompt_schedule import schedule
from ..engine.prompt_syntax import prompt_errors
from ..engine.prompt_tags import prompt_fields, strip_tags, tag_loras


def prompt_problems(models, spec) -> list[tuple[str, str]]:
    """(prompt field, message) for each problem of each prompt (422s, collected by api/spec_checks.py)."""
    known = models.names("embedding")
    problems = list(tag_loras(spec)[1])
    for field, text in prompt_fields(spec):
        text = strip_tags(text)
        if spec.prompt_weighting == "comfy":  # one text: ComfyUI has no prompt editing
            messages = comfy_prompt_errors(text, known)
        else:  # each text the prompt takes over the steps (prompt editing), once
            texts = dict.fromkeys(t for _, t in schedule(text, spec.steps))
            messages = dict.fromkeys(m for t in texts for m in prompt_errors(t, known))
        problems += [(field, m) for m in messages]
    return problems


__all__ = ["prompt_fields", "prompt_problems"]  # prompt_fields: family_checks.py reads the prompts with it
