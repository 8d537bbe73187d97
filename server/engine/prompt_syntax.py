"""Prompt text as AUTOMATIC1111 and ComfyUI users write it: attention weights, BREAK, embedding references.

Attention follows A1111's `parse_prompt_attention` (modules/prompt_parser.py), rule for rule:

- `(text)` multiplies the weight of what it encloses by 1.1, `[text]` divides it by 1.1, `(text:1.3)` multiplies
  it by 1.3; they nest and multiply. A bracket never closed acts from where it opens to the end of the prompt
  (all round ones first, then all square ones); a `)` or `]` with nothing open, or `:1.3)` outside round brackets,
  is plain text.
- `\\(`, `\\)`, `\\[`, `\\]` and `\\\\` are the literal characters; a backslash before anything else is dropped.
- `BREAK` (the word, upper case) ends the current 75-token chunk.
- Runs with equal weights are merged; an empty prompt is one empty run of weight 1.

A1111's prompt editing (`[a:b:0.5]`, `[a|b]`) is another parser that runs before this one (prompt_schedule.py);
this one reads each text it yields, with the `<lora:...>` tags already cut out (prompt_tags.py).

An embedding is used by its name, as in A1111 (matched in the tokens, text_encoding.py), or explicitly as ComfyUI
writes it, `embedding:NAME` (a file extension after NAME is ignored). Pure Python: the API checks prompts with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROUND = 1.1
SQUARE = 1 / 1.1

# One token of the attention syntax at a time: an escape, a lone backslash, an opening bracket, a weight that
# closes a round bracket, a closing bracket, a colon, or a run of anything else.
_TOKEN = re.compile(r"\\[()\[\]\\]|\\|\(|\[|:([+-]?[.\d]+)\)|\)|]|:|[^\\()\[\]:]+")
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
# ComfyUI's explicit reference: the name runs to the next space, comma or bracket.
EMBEDDING_REF = re.compile(r"embedding:([^\s,()\[\]:\\]+)")
_EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin", ".pth", ".ckpt")


class PromptSyntaxError(ValueError):
    """A prompt A1111 cannot read either (a weight that is not a number)."""


@dataclass
class Run:
    """Text with one attention weight, or a BREAK (`text` empty)."""

    text: str
    weight: float = 1.0
    is_break: bool = False


def parse_attention(text: str) -> list[Run]:
    """The prompt as runs of text with their weights (see the module's docstring)."""
    runs: list[Run] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale(start: int, factor: float):
        for run in runs[start:]:
            run.weight *= factor

    for m in _TOKEN.finditer(text):
        token, weight = m.group(0), m.group(1)
        if token.startswith("\\"):
            runs.append(Run(token[1:]))
        elif token == "(":
            round_open.append(len(runs))
        elif token == "[":
            square_open.append(len(runs))
        elif weight is not None and round_open:
            try:
                factor = float(weight)
            except ValueError:
                raise PromptSyntaxError(
                    f"the weight in {token!r} is not a number: write it like (word:1.2), or escape the "
                    f"brackets as \\( \\) to keep them as text"
                ) from None
            scale(round_open.pop(), factor)
        elif token == ")" and round_open:
            scale(round_open.pop(), ROUND)
        elif token == "]" and square_open:
            scale(square_open.pop(), SQUARE)
        else:
            for i, part in enumerate(_BREAK.split(token)):
                if i:
                    runs.append(Run("", -1.0, is_break=True))
                runs.append(Run(part))
    for start in round_open:
        scale(start, ROUND)
    for start in square_open:
        scale(start, SQUARE)
    merged: list[Run] = []
    for run in runs or [Run("")]:
        last = merged[-1] if merged else None
        if last is not None and not last.is_break and not run.is_break and last.weight == run.weight:
            last.text += run.text
        else:
            merged.append(run)
    return merged


def split_references(text: str) -> list[str | tuple[str]]:
    """Text with its `embedding:NAME` references cut out: plain strings and (NAME,) tuples, in order."""
    out: list[str | tuple[str]] = []
    at = 0
    for m in EMBEDDING_REF.finditer(text):
        if m.start() > at:
            out.append(text[at : m.start()])
        out.append((m.group(1),))
        at = m.end()
    if at < len(text):
        out.append(text[at:])
    return out


def resolve_embedding(name: str, known) -> str | None:
    """The configured embedding an `embedding:NAME` reference means: the name as written, without a weight file's
    extension, then the same name in another case when only one matches; None when none does."""
    known = list(known)
    for candidate in (name, *(name[: -len(s)] for s in _EMBEDDING_SUFFIXES if name.lower().endswith(s))):
        if candidate in known:
            return candidate
        folded = [k for k in known if k.lower() == candidate.lower()]
        if len(folded) == 1:
            return folded[0]
    return None


def prompt_errors(text: str, known_embeddings) -> list[str]:
    """What stops a prompt from being read: a weight that is not a number, an `embedding:NAME` not configured."""
    try:
        runs = parse_attention(text)
    except PromptSyntaxError as e:
        return [str(e)]
    known = sorted(known_embeddings)
    out = []
    for run in runs:
        for m in EMBEDDING_REF.finditer(run.text):
            if resolve_embedding(m.group(1), known) is None:
                out.append(
                    f"unknown embedding {m.group(1)!r} in {m.group(0)!r}; configured embeddings: "
                    f"{', '.join(known) or 'none'} (add the file to an embeddings folder of the server's model config)"
                )
    return out
