"""The prompts of a spec can be read: A1111 weights that are numbers, and every `embedding:NAME` configured."""

from __future__ import annotations

from ..engine.prompt_syntax import prompt_errors


def prompt_problems(models, spec) -> list[tuple[str, str]]:
    """(prompt field, message) for each problem of each prompt (422s, collected by api/spec_checks.py)."""
    known = models.names("embedding")
    return [(field, message) for field, text in prompt_fields(spec) for message in prompt_errors(text, known)]


def prompt_fields(spec) -> list[tuple[str, str]]:
    """(spec field, text) of every prompt of the spec."""
    fields = [("prompt", spec.prompt), ("negative_prompt", spec.negative_prompt)]
    return fields + [(f"prompts[{i}].prompt", k.prompt) for i, k in enumerate(spec.prompts)]
