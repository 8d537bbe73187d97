"""The configured textual-inversion embeddings as prompts meet them: found by name in the tokens (A1111 matches
each embedding's tokenized name, longest first) or by an `embedding:NAME` reference, loaded on first use."""

from __future__ import annotations

from ..loaders import CheckpointError, file_identity, resolve_source
from ..loaders.embeddings import load_embedding
from .prompt_chunks import EmbeddingSource, Tokenizer
from .prompt_syntax import resolve_embedding


class Embeddings(EmbeddingSource):
    def __init__(self, config, tok: Tokenizer, dim: int):
        self.config, self.dim = config, dim
        self.names = config.names("embedding")
        self._by_first: dict[int, list[tuple[list[int], str]]] = {}
        for name, ids in zip(self.names, tok.encode(self.names)):
            if ids:
                self._by_first.setdefault(ids[0], []).append((ids, name))
        for found in self._by_first.values():
            found.sort(key=lambda item: len(item[0]), reverse=True)
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
            vectors = load_embedding(where)
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
