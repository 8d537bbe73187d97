"""The configured textual-inversion embeddings as prompts meet them: found by name in the tokens (A1111 matches
each embedding's tokenized name, longest first) or by an `embedding:NAME` reference, loaded on first use."""

from __future__ import annotations

import threading
from weakref import WeakKeyDictionary

from ..loaders import CheckpointError, file_identity, resolve_source
from ..loaders.embeddings import load_embedding
from ..loaders.file_versions import PerVersion
from .prompt_chunks import EmbeddingSource, Tokenizer
from .prompt_syntax import resolve_embedding

# Kept across jobs: the names tokenized once per tokenizer and set of names, each file's vectors per file version
# (an edited or replaced file is read again).
_NAME_INDEX: WeakKeyDictionary = WeakKeyDictionary()  # the pipeline's tokenizer -> {names: index}
_NAME_LOCK = threading.Lock()
_VECTORS = PerVersion()


def name_index(tok: Tokenizer, names: list[str], tokenizer) -> dict[int, list[tuple[list[int], str]]]:
    """first token id -> [(the name's token ids, name)], longest first; `tokenizer` (the pipeline's) keys the cache."""
    with _NAME_LOCK:
        index = _NAME_INDEX.setdefault(tokenizer, {}).get(tuple(names))
    if index is None:
        index = {}
        for name, ids in zip(names, tok.encode(names)):
            if ids:
                index.setdefault(ids[0], []).append((ids, name))
        for found in index.values():
            found.sort(key=lambda item: len(item[0]), reverse=True)
        with _NAME_LOCK:
            _NAME_INDEX.setdefault(tokenizer, {})[tuple(names)] = index
    return index


class Embeddings(EmbeddingSource):
    def __init__(self, config, tok: Tokenizer, dim: int, tokenizer):
        self.config, self.dim = config, dim
        self.names = config.names("embedding")
        self._by_first = name_index(tok, self.names, tokenizer)
        self._vectors: dict[str, object] = {}
        self.used: list[str] = []  # in the order the prompts first used them

    def match(self, tokens, at):
        for ids, name in self._by_first.get(tokens[at], ()):
            if tokens[at : at + len(ids)] == ids:
                return name, len(ids)
        return None

    def resolve(self, name: str) -> str:
        found = resolve_embedding(name, self.names)
        if found is None:
            raise KeyError(f"unknown embedding {name!r}; configured: {', '.join(self.names) or 'none'}")
        return found

    def length(self, name: str) -> int:
        return self.vectors(name).shape[0]

    def vectors(self, name: str):
        """(n, dim) float32 on the CPU."""
        if name not in self._vectors:
            entry = self.config.get("embedding", name)
            kind, where = resolve_source(entry.source, entry.weight_name)
            if kind != "file":
                raise CheckpointError(f"{entry.source}: an embedding is one file (.pt or .safetensors), not a folder")
            vectors = _VECTORS.get(where, load_embedding)
            if vectors.shape[1] != self.dim:
                raise CheckpointError(
                    f"{where}: embedding {name!r} has vectors of {vectors.shape[1]} values; this checkpoint's text "
                    f"encoder takes {self.dim} (SD1.5 embeddings have 768; 1024 ones are for SD2)"
                )
            self._vectors[name] = vectors
        if name not in self.used:
            self.used.append(name)
        return self._vectors[name]

    def identities(self) -> list[dict]:
        """What the manifest records of the embeddings the prompts used: name, source, sha256, vectors."""
        return [
            {**file_identity(self.config.get("embedding", n)), "vectors": int(self._vectors[n].shape[0])}
            for n in self.used
        ]
