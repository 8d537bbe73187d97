"""Prompt text as ComfyUI's CLIP Text Encode reads it (comfy/sd1_clip.py: `escape_important`, `parse_parentheses`,
`token_weights`, `SDTokenizer.tokenize_with_weights`), for `prompt_weighting: "comfy"`.

- `(text)` multiplies the weight of what it encloses by 1.1 and nested ones multiply (`((text))` 1.21), but
  `(text:1.3)` SETS the weight to 1.3, whatever encloses it (`((cat:1.5))` is 1.5; `((cat):1.5)` is 1.65). The
  weight is what follows the LAST colon and must read as a Python float, else the colon stays text at 1.1
  (`(a:b)`); `(:1.3)` is text too. Only round brackets weigh: `[cat]` is the characters `[`, `cat`, `]`.
- `\\(` and `\\)` are the brackets as text; every other backslash is a character of the prompt.
- A `(` never closed is text from there on; a `)` with nothing open is text, and so is everything after it.
- `embedding:NAME` at the start of a weighted part or after a space or newline is an embedding (NAME runs to the
  next whitespace; a trailing comma is cut off when NAME with it is not an embedding); `cat,embedding:x` is text.
- No BREAK, no prompt editing or alternation, no embedding found by its bare name: all of that is text here.

Chunks: each weighted part between embeddings is one group of tokens; a group of fewer than 8 tokens that does not
fit the current 75-token chunk moves whole to the next one, a longer group (an embedding's vectors too) is cut at
the chunk's end. Pure Python over a tokenizer, as prompt_chunks.py: no torch.
"""

from __future__ import annotations

import math
import re

from .prompt_chunks import CHUNK, PLACEHOLDER, Chunk, EmbeddingSource, Tokenizer
from .prompt_syntax import resolve_embedding

ROUND = 1.1
WHOLE_GROUP = 8  # ComfyUI's max_word_length: groups shorter than this never straddle two chunks
IDENTIFIER = "embedding:"
_PIECES = re.compile(r" embedding:|\nembedding:")
# ComfyUI hides escaped brackets behind two control characters while it reads the brackets
_HIDDEN = (("\\)", "\0\1"), ("\\(", "\0\2"))


def weighted_parts(text: str) -> list[tuple[str, float]]:
    """The prompt as (text, weight) parts in order, escapes turned back into brackets."""
    for escaped, hidden in _HIDDEN:
        text = text.replace(escaped, hidden)
    out = []
    for part, weight in _weigh(text, 1.0):
        for escaped, hidden in _HIDDEN:
            part = part.replace(hidden, escaped[1])
        out.append((part, weight))
    return out


def _top_level(text: str) -> list[str]:
    """Text split into plain runs and outermost `(...)` groups, ComfyUI's `parse_parentheses`."""
    parts, current, depth = [], "", 0
    for ch in text:
        if ch == "(" and depth == 0 and current:
            parts.append(current)
            current = ""
        current += ch
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == ")" and depth == 0:
            parts.append(current)
            current = ""
    if current:
        parts.append(current)
    return parts


def _weigh(text: str, weight: float) -> list[tuple[str, float]]:
    out = []
    for part in _top_level(text):
        if not (len(part) >= 2 and part[0] == "(" and part[-1] == ")"):
            out.append((part, weight))
            continue
        inner, inner_weight = part[1:-1], weight * ROUND
        colon = inner.rfind(":")
        if colon > 0:
            try:
                inner_weight = float(inner[colon + 1 :])
                inner = inner[:colon]
            except ValueError:
                pass
        out += _weigh(inner, inner_weight)
    return out


def _pieces(part: str) -> list[str]:
    """A weighted part cut before each ` embedding:` / newline `embedding:`, empty pieces left out."""
    split = _PIECES.split(part)
    return [p for p in [split[0], *(IDENTIFIER + rest for rest in split[1:])] if p]


def _reference(piece: str, embeddings: EmbeddingSource) -> tuple[str, str]:
    """(configured embedding, text left after its name) of a piece starting with `embedding:`; KeyError if none."""
    words = piece[len(IDENTIFIER) :].strip("\n").split()
    if not words:
        raise KeyError("an embedding without a name (write embedding:NAME)")
    name, rest = words[0], " ".join(words[1:])
    try:
        return embeddings.resolve(name), rest
    except KeyError:
        stripped = name.strip(",")
        if len(stripped) == len(name) or not stripped:
            raise
        return embeddings.resolve(stripped), f"{name[len(stripped) :]} {rest}"


def groups(text: str, tok: Tokenizer, embeddings: EmbeddingSource | None = None) -> list[list[tuple]]:
    """Token groups in order; each item (token id, weight, None) or (PLACEHOLDER, weight, (embedding, vector))."""
    embeddings = embeddings or EmbeddingSource()
    out: list[list[tuple]] = []
    for part, weight in weighted_parts(text):
        for piece in _pieces(part):
            if piece.startswith(IDENTIFIER):
                name, piece = _reference(piece, embeddings)
                out.append([(PLACEHOLDER, weight, (name, i)) for i in range(embeddings.length(name))])
                if not piece:
                    continue
            out.append([(t, weight, None) for t in tok.encode([piece])[0]])
    return out


def comfy_chunks(text: str, tok: Tokenizer, embeddings: EmbeddingSource | None = None) -> list[Chunk]:
    """The prompt's 77-token chunks as ComfyUI fills them (at least one). An embedding vector's fix is
    (position, name, vector index, 1). Raises KeyError for an embedding that is not configured."""
    chunks: list[list[tuple]] = [[]]
    for group in groups(text, tok, embeddings):
        whole = len(group) < WHOLE_GROUP
        while group:
            room = CHUNK - len(chunks[-1])
            if len(group) <= room:
                chunks[-1] += group
                break
            if not whole:
                chunks[-1] += group[:room]
                group = group[room:]
            chunks.append([])
    return [_chunk(items, tok) for items in chunks]


def _chunk(items: list[tuple], tok: Tokenizer) -> Chunk:
    pad = CHUNK - len(items) + 1  # end token, then the padding (SD1.5 pads with the end token)
    fixes = [(at + 1, ref[0], ref[1], 1) for at, (_, _, ref) in enumerate(items) if ref is not None]
    return Chunk(
        [tok.start] + [t for t, _, _ in items] + [tok.end] * pad,
        [1.0] + [w for _, w, _ in items] + [1.0] * pad,
        fixes,
    )


def comfy_prompt_errors(text: str, known_embeddings) -> list[str]:
    """What stops a ComfyUI prompt from being used: an embedding that is not configured, a weight that is not a
    finite number (ComfyUI would condition on NaN or infinity)."""
    known = sorted(known_embeddings)
    out = []
    for part, weight in weighted_parts(text):
        if not math.isfinite(weight):
            out.append(f"a weight of {weight} in this prompt; write a finite number like (word:1.2)")
        for piece in _pieces(part):
            if not piece.startswith(IDENTIFIER):
                continue
            try:
                _reference(piece, _Known(known))
            except KeyError as e:
                out.append(
                    f"{e.args[0]} in {piece.split()[0]!r}; configured embeddings: {', '.join(known) or 'none'} "
                    f"(add the file to an embeddings folder of the server's model config)"
                )
    return list(dict.fromkeys(out))


class _Known(EmbeddingSource):
    def __init__(self, names):
        self.names = names

    def resolve(self, name):
        found = resolve_embedding(name, self.names)
        if found is None:
            raise KeyError(f"unknown embedding {name!r}")
        return found
