"""A prompt as chunks of CLIP tokens, A1111's way (modules/sd_hijack_clip.py `tokenize_line`).

Each chunk holds 75 prompt tokens between a start and an end token (77 in all), padded with end tokens; a longer
prompt takes more chunks, which the text encoder encodes one by one and which are then laid end to end (154, 231…
tokens). Each token carries its attention weight. A chunk closes early:

- at BREAK;
- at a token that would be the 76th when a comma is among the last 20 tokens: what follows the comma moves on to
  the next chunk, so a phrase is not cut in two (A1111's "comma padding backtrack", 20 by default);
- before an embedding whose vectors do not fit any more.

An embedding takes one position per vector. It is found by its name in the tokens of a run of text (A1111), or
given by an `embedding:NAME` reference (ComfyUI). Pure Python over a tokenizer: no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .prompt_syntax import parse_attention, split_references

CHUNK = 75  # prompt tokens per chunk, between the start and end tokens
COMMA_BACKTRACK = 20
PLACEHOLDER = 0  # the token id standing where an embedding's vectors go (replaced before the transformer)


@dataclass
class Chunk:
    tokens: list[int]  # CHUNK + 2 ids, start and end tokens included
    weights: list[float]
    fixes: list[tuple[int, str]] = field(default_factory=list)  # (position in tokens, embedding name)


class EmbeddingSource:
    """What the chunker asks about embeddings (text_encoding.Embeddings answers with the configured ones)."""

    def match(self, tokens: list[int], at: int) -> tuple[str, int] | None:
        """(name, tokens of its name) when an embedding's name starts at tokens[at]."""
        return None

    def resolve(self, name: str) -> str:
        """The configured name an `embedding:NAME` reference means; raises KeyError when none."""
        raise KeyError(name)

    def length(self, name: str) -> int:
        """How many vectors the embedding has."""
        raise KeyError(name)


@dataclass
class Tokenizer:
    """The few things the chunker needs of a CLIP tokenizer."""

    encode: Callable[[list[str]], list[list[int]]]  # texts -> ids without start/end tokens, never truncated
    start: int
    end: int
    comma: int | None

    @classmethod
    def of(cls, tokenizer) -> Tokenizer:
        def encode(texts):
            if not texts:
                return []
            return tokenizer(texts, truncation=False, add_special_tokens=False, verbose=False)["input_ids"]

        return cls(encode, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.get_vocab().get(",</w>"))


class _Builder:
    def __init__(self, tok: Tokenizer):
        self.tok = tok
        self.chunks: list[Chunk] = []
        self.tokens: list[int] = []
        self.weights: list[float] = []
        self.fixes: list[tuple[int, str]] = []
        self.last_comma = -1

    def close(self):
        pad = CHUNK - len(self.tokens)
        self.chunks.append(
            Chunk(
                [self.tok.start] + self.tokens + [self.tok.end] * (pad + 1),
                [1.0] + self.weights + [1.0] * (pad + 1),
                [(at + 1, name) for at, name in self.fixes],
            )
        )
        self.tokens, self.weights, self.fixes, self.last_comma = [], [], [], -1

    def backtrack(self):
        """Move what follows the last comma into a new chunk (with any embedding that starts there)."""
        cut = self.last_comma + 1
        tokens, weights = self.tokens[cut:], self.weights[cut:]
        moved = [(at - cut, name) for at, name in self.fixes if at >= cut]
        self.tokens, self.weights = self.tokens[:cut], self.weights[:cut]
        self.fixes = [(at, name) for at, name in self.fixes if at < cut]
        self.close()
        self.tokens, self.weights, self.fixes = tokens, weights, moved

    def prepare(self, token: int | None):
        """Before each token or embedding (None), in A1111's order: note a comma, or move the words after a
        recent comma on when the chunk is full; then close a full chunk."""
        if token is not None and token == self.tok.comma:
            self.last_comma = len(self.tokens)
        elif (
            len(self.tokens) == CHUNK
            and self.last_comma != -1
            and len(self.tokens) - self.last_comma <= COMMA_BACKTRACK
        ):
            self.backtrack()
        if len(self.tokens) == CHUNK:
            self.close()

    def add_token(self, token: int, weight: float):
        self.tokens.append(token)
        self.weights.append(weight)

    def add_embedding(self, name: str, vectors: int, weight: float):
        if vectors > CHUNK:
            raise ValueError(f"embedding {name!r} has {vectors} vectors; a prompt chunk holds at most {CHUNK}")
        if len(self.tokens) + vectors > CHUNK:
            self.close()
        self.fixes.append((len(self.tokens), name))
        self.tokens += [PLACEHOLDER] * vectors
        self.weights += [weight] * vectors


def chunk_prompt(text: str, tok: Tokenizer, embeddings: EmbeddingSource | None = None) -> list[Chunk]:
    """The prompt's chunks (at least one). Raises KeyError for an `embedding:NAME` that is not configured, and
    prompt_syntax.PromptSyntaxError for a weight that is not a number."""
    embeddings = embeddings or EmbeddingSource()
    build = _Builder(tok)
    for run in parse_attention(text):
        if run.is_break:
            build.close()
            continue
        pieces = split_references(run.text)
        plain = [p for p in pieces if isinstance(p, str)]
        ids = iter(tok.encode(plain))
        for piece in pieces:
            if not isinstance(piece, str):
                name = embeddings.resolve(piece[0])
                build.prepare(None)
                build.add_embedding(name, embeddings.length(name), run.weight)
                continue
            tokens = next(ids)
            at = 0
            while at < len(tokens):
                build.prepare(tokens[at])
                found = embeddings.match(tokens, at)
                if found is None:
                    build.add_token(tokens[at], run.weight)
                    at += 1
                else:
                    build.add_embedding(found[0], embeddings.length(found[0]), run.weight)
                    at += found[1]
    if build.tokens or not build.chunks:
        build.close()
    return build.chunks
